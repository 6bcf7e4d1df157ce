// Persistence across a server restart, in two runs of this script:
//
//   node persist.mjs ws://HOST:PORT/ws ROOM write   edits ROOM, waits until a second, fresh client
//                                                    sees every edit (so the server holds them),
//                                                    prints the content and exits
//   node persist.mjs ws://HOST2:PORT2/ws ROOM read  (after the Rust test restarted the server on
//                                                    the same data dir) connects fresh and checks
//                                                    the content is there once the handshake is done
//
// The content is derived from ROOM alone, so both phases agree on it.

import { Y, run, connect, waitSynced, waitFor, snapshot, canonical, preview } from './harness.mjs'

const EDITS = 50

function write (doc, room) {
  // Many small updates (merged into one snapshot by the server) plus nested values and non-ASCII text.
  for (let i = 0; i < EDITS; i++) {
    doc.transact(() => {
      const text = doc.getText('text')
      text.insert(text.length, `${i} `)
      doc.getArray('list').push([i % 2 === 0 ? i : { n: i, s: `item ${i}` }])
    })
  }
  doc.transact(() => {
    doc.getText('text').insert(0, `persisted in ${room}: héllo 🌍 — `)
    doc.getText('text').delete(0, 'persisted'.length) // a delete must survive too
    doc.getMap('map').set('room', room)
    doc.getMap('map').set('nested', { a: [1, 2, { b: 'c' }], flag: true, nothing: null })
    doc.getMap('map').set('number', 42.5)
  })
}

/** What a client must hold after the write phase, computed on a scratch document. */
function expectedContent (room) {
  const scratch = new Y.Doc()
  write(scratch, room)
  return canonical(snapshot(scratch))
}

run('persist', async ({ serverUrl, room, extra }) => {
  const phase = extra[0]
  const expected = expectedContent(room)
  if (phase === 'write') {
    const writer = connect(serverUrl, room, { label: 'writer' })
    await waitSynced(writer)
    if (canonical(snapshot(writer.doc)) !== canonical({ text: '', map: {}, list: [] })) {
      throw new Error(`room ${room} is not empty before the write phase: ${preview(snapshot(writer.doc))}`)
    }
    write(writer.doc, room)
    // The server holds every edit once a fresh client receives them from it.
    const check = connect(serverUrl, room, { label: 'check' })
    await waitFor('a fresh client to see every edit', () => canonical(snapshot(check.doc)) === expected,
      { detail: () => `fresh: ${preview(snapshot(check.doc))}\nexpected: ${preview(expected)}` })
    return { phase, content: snapshot(writer.doc) }
  }
  if (phase === 'read') {
    const reader = connect(serverUrl, room, { label: 'reader' })
    await waitSynced(reader)
    const got = canonical(snapshot(reader.doc))
    if (got !== expected) throw new Error(`after the restart the room holds:\n${preview(got)}\nexpected:\n${preview(expected)}`)
    return { phase, content: snapshot(reader.doc) }
  }
  throw new Error(`phase must be "write" or "read", not ${JSON.stringify(phase)}`)
})
