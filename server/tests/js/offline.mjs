// Offline edits: bob disconnects (provider.disconnect()), edits while offline as alice edits
// online, then reconnects (provider.connect()); both must converge holding every edit. On
// reconnect bob's offline edits reach the server as his sync step 2, which the server must apply
// and relay to alice.
//
// usage: node offline.mjs ws://HOST:PORT/ws ROOM

import { run, connect, waitSynced, waitFor, snapshot, canonical, preview } from './harness.mjs'

run('offline', async ({ serverUrl, room }) => {
  const alice = connect(serverUrl, room, { label: 'alice' })
  const bob = connect(serverUrl, room, { label: 'bob' })
  await Promise.all([waitSynced(alice), waitSynced(bob)])
  alice.doc.getText('text').insert(0, 'base')
  await waitFor('bob to get the base text', () => bob.doc.getText('text').toString() === 'base')
  // (A state of its own: peers ignore the initial clock-0 state.)
  bob.awareness.setLocalStateField('user', { name: 'bob' })
  await waitFor('alice to hold bob\'s awareness state', () => alice.awareness.getStates().has(bob.doc.clientID))

  bob.provider.disconnect()
  if (bob.provider.wsconnected) throw new Error('bob is still connected after disconnect()')
  bob.doc.transact(() => {
    bob.doc.getText('text').insert(0, 'offline-bob ')
    bob.doc.getMap('map').set('bob', 'offline')
    bob.doc.getArray('list').push(['bob-offline'])
  })
  alice.doc.transact(() => {
    alice.doc.getText('text').insert(alice.doc.getText('text').length, ' online-alice')
    alice.doc.getMap('map').set('alice', 'online')
    alice.doc.getArray('list').push(['alice-online'])
  })
  // The sentinel: the server removes bob's awareness state once his socket has closed, after
  // relaying anything he sent on it; alice's edit was made after disconnect() detached bob's socket.
  await waitFor('alice to see bob leave', () => !alice.awareness.getStates().has(bob.doc.clientID))
  if (alice.doc.getText('text').toString().includes('offline-bob')) throw new Error("alice got bob's edit while bob was offline")
  if (bob.doc.getText('text').toString().includes('online-alice')) throw new Error("bob got alice's edit while offline")

  const reconnectedAt = performance.now()
  bob.provider.connect()
  const views = () => [alice, bob].map((c) => canonical(snapshot(c.doc)))
  await waitFor('alice and bob to converge after the reconnect', () => {
    const [a, b] = views()
    return a === b && a.includes('offline-bob') && a.includes('online-alice')
  }, { detail: () => views().map(preview).join('\n') })
  const mergeMs = Math.round(performance.now() - reconnectedAt)

  const { text, map, list } = snapshot(alice.doc)
  if (text !== 'offline-bob base online-alice') throw new Error(`merged text: ${JSON.stringify(text)}`)
  if (map.bob !== 'offline' || map.alice !== 'online') throw new Error(`merged map: ${canonical(map)}`)
  if (list.length !== 2 || !list.includes('bob-offline') || !list.includes('alice-online')) throw new Error(`merged list: ${canonical(list)}`)
  return { text, mergeMs }
})
