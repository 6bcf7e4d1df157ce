// Child process for awareness.mjs: "alice", a client that announces a presence state and is then
// killed with SIGKILL, so her socket ends without a close frame or an awareness removal.
//
// usage: node awareness-peer.mjs ws://HOST:PORT/ws ROOM
//
// Prints `{"ok":true,"clientID":N,...}` once connected, synced and announced, then idles until
// killed. It exits by itself when its parent goes away (stdin closes) or after the watchdog.

import { run, connect, waitSynced } from './harness.mjs'

run('awareness-peer', async ({ serverUrl, room }) => {
  process.stdin.on('close', () => process.exit(0))
  process.stdin.resume()
  const alice = connect(serverUrl, room, { label: 'alice' })
  alice.awareness.setLocalStateField('user', { name: 'alice', color: '#e06c75' })
  alice.awareness.setLocalStateField('cursor', { index: 3 })
  await waitSynced(alice)
  // Print the ready line ourselves: `run` would exit after printing, and alice must stay connected.
  process.stdout.write(JSON.stringify({ ok: true, script: 'awareness-peer', clientID: alice.doc.clientID }) + '\n')
  await new Promise(() => {}) // until SIGKILL; the watchdog ends it if nobody does
})
