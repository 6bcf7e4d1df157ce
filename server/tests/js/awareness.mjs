// Awareness through the server: bob sees alice's presence; carol, joining later, is told about it on
// connect; then alice's process is SIGKILLed (no close frame, no awareness removal of her own) and
// both must see her state removed within REMOVAL_MS.
//
// usage: node awareness.mjs ws://HOST:PORT/ws ROOM
//
// Only the server can do that removal in time: the JS clients drop a silent peer after 30 s
// (y-protocols' outdatedTimeout), and the server under test runs with a 30 s awareness timeout,
// so removal within 5 s comes from the server noticing the dead socket.

import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { run, connect, waitSynced, waitFor, log } from './harness.mjs'

const REMOVAL_MS = 5_000

/** Start alice in a child process; resolves to her client id once she is announced. */
function startAlice (serverUrl, room) {
  const script = fileURLToPath(new URL('./awareness-peer.mjs', import.meta.url))
  const child = spawn(process.execPath, [script, serverUrl, room], { stdio: ['pipe', 'pipe', 'inherit'] })
  process.on('exit', () => child.kill('SIGKILL'))
  const ready = new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', (line) => resolve(JSON.parse(line).clientID))
    child.once('exit', (code, signal) => reject(new Error(`alice exited early: code=${code} signal=${signal}`)))
  })
  return { child, ready }
}

const userName = (client, id) => client.awareness.getStates().get(id)?.user?.name

/** Resolves with how the removal of `id` reached `client`: elapsed ms and the change's origin. */
function watchRemoval (client, id) {
  return new Promise((resolve) => {
    client.awareness.on('change', ({ removed }, origin) => {
      if (removed.includes(id)) resolve({ at: performance.now(), origin })
    })
  })
}

run('awareness', async ({ serverUrl, room }) => {
  // (A state must be set explicitly: y-protocols ignores a peer's initial `{}` at clock 0.)
  const bob = connect(serverUrl, room, { label: 'bob' })
  bob.awareness.setLocalStateField('user', { name: 'bob' })
  await waitSynced(bob)
  const alice = startAlice(serverUrl, room)
  const aliceId = await alice.ready
  await waitFor("bob to see alice's presence", () => userName(bob, aliceId) === 'alice')

  // A late joiner learns who is here from the server's handshake.
  const carol = connect(serverUrl, room, { label: 'carol' })
  carol.awareness.setLocalStateField('user', { name: 'carol' })
  await waitSynced(carol)
  await waitFor("carol to see alice's presence on join", () => userName(carol, aliceId) === 'alice')

  const removals = [watchRemoval(bob, aliceId), watchRemoval(carol, aliceId)]
  const killedAt = performance.now()
  alice.child.kill('SIGKILL')
  const timeout = new Promise((_resolve, reject) => setTimeout(() => {
    reject(new Error(`alice's awareness state was not removed within ${REMOVAL_MS} ms of her process being killed ` +
      `(bob sees: ${JSON.stringify(userName(bob, aliceId))}, carol sees: ${JSON.stringify(userName(carol, aliceId))})`))
  }, REMOVAL_MS))
  const [atBob, atCarol] = await Promise.race([Promise.all(removals), timeout])

  // The removal must have come in as a message from the server (origin = the provider), not from
  // the client's own outdated-state check (origin 'timeout').
  for (const [who, removal, client] of [['bob', atBob, bob], ['carol', atCarol, carol]]) {
    if (removal.origin !== client.provider) throw new Error(`${who} removed alice with origin ${String(removal.origin)}, not a server message`)
  }
  if (bob.awareness.getStates().has(aliceId) || carol.awareness.getStates().has(aliceId)) {
    throw new Error('alice came back after her removal')
  }
  // Bob and carol still see each other: only the dead client's state went.
  await waitFor('bob and carol to still see each other', () =>
    userName(bob, carol.doc.clientID) === 'carol' && userName(carol, bob.doc.clientID) === 'bob')
  log(`removal after ${Math.round(atBob.at - killedAt)} ms (bob), ${Math.round(atCarol.at - killedAt)} ms (carol)`)
  return {
    aliceId,
    removedAfterMs: { bob: Math.round(atBob.at - killedAt), carol: Math.round(atCarol.at - killedAt) }
  }
})
