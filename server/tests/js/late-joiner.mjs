// A late joiner gets the full state: a writer makes 100 separate edits (100 update messages), a
// reader joining afterwards converges to it; then writer and reader leave, and a second reader,
// alone in the room, must hold everything as soon as its sync handshake completes: the state came
// from the server's copy of the document, not from another client.
//
// usage: node late-joiner.mjs ws://HOST:PORT/ws ROOM

import { run, connect, waitSynced, waitFor, snapshot, canonical, preview } from './harness.mjs'

const EDITS = 100

run('late-joiner', async ({ serverUrl, room }) => {
  const writer = connect(serverUrl, room, { label: 'writer' })
  await waitSynced(writer)
  for (let i = 0; i < EDITS; i++) {
    // One transaction each: the server merges many small updates, not one big one.
    writer.doc.transact(() => {
      writer.doc.getText('text').insert(0, `line ${i} ✓\n`)
      writer.doc.getMap('map').set(`k${i % 10}`, i)
      writer.doc.getArray('list').push([i])
    })
  }
  const expected = canonical(snapshot(writer.doc))

  const first = connect(serverUrl, room, { label: 'first reader' })
  await waitFor('the first late joiner to converge', () => canonical(snapshot(first.doc)) === expected,
    { detail: () => `reader: ${preview(snapshot(first.doc))}\nwriter: ${preview(expected)}` })

  writer.provider.destroy()
  first.provider.destroy()

  const second = connect(serverUrl, room, { label: 'second reader' })
  await waitSynced(second)
  const got = canonical(snapshot(second.doc))
  if (got !== expected) {
    throw new Error(`right after its sync handshake, the second late joiner lacks state:\ngot:      ${preview(got)}\nexpected: ${preview(expected)}`)
  }
  return { edits: EDITS, textLength: snapshot(second.doc).text.length }
})
