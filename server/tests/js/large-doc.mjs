// A 5 MiB Y.Text document syncs to a fresh client: a writer appends five 1 MiB chunks (five update
// messages of about 1 MiB each); once the server holds them and the writer has left, a new client
// must receive all of it, byte for byte, in its sync handshake (one ~5 MiB sync step 2).
//
// usage: node large-doc.mjs ws://HOST:PORT/ws ROOM

import { run, connect, waitSynced, waitFor } from './harness.mjs'

const MIB = 1024 * 1024
const CHUNKS = 5

/** 1 MiB of numbered 64-byte lines, different in every chunk, so a lost or repeated part shows. */
function chunk (k) {
  const lines = []
  for (let line = 0; line < MIB / 64; line++) {
    lines.push(`chunk ${k} line ${String(line).padStart(5, '0')} `.padEnd(63, '.') + '\n')
  }
  return lines.join('')
}

run('large-doc', async ({ serverUrl, room }) => {
  const writer = connect(serverUrl, room, { label: 'writer' })
  await waitSynced(writer)
  const text = writer.doc.getText('text')
  for (let k = 0; k < CHUNKS; k++) text.insert(text.length, chunk(k))
  const expected = text.toString()
  if (expected.length !== CHUNKS * MIB) throw new Error(`writer built ${expected.length} chars`)

  // A probe that sees all 5 MiB proves the server holds them; then everyone leaves, so the fresh
  // client below can only get the document from the server's copy, in its sync handshake.
  const probe = connect(serverUrl, room, { label: 'probe' })
  await waitFor(`the server to hold ${CHUNKS} MiB`, () => probe.doc.getText('text').length === expected.length, {
    timeoutMs: 20_000,
    detail: () => `probe has ${probe.doc.getText('text').length} of ${expected.length} chars; closes: ${JSON.stringify([writer.closes, probe.closes])}`
  })
  if (writer.closes.length || probe.closes.length) throw new Error(`connections were closed: ${JSON.stringify([writer.closes, probe.closes])}`)
  writer.provider.destroy()
  probe.provider.destroy()

  const started = performance.now()
  const reader = connect(serverUrl, room, { label: 'reader' })
  await waitSynced(reader, 20_000)
  const syncMs = Math.round(performance.now() - started)
  const got = reader.doc.getText('text').toString()
  if (got.length !== expected.length) throw new Error(`after its sync handshake the fresh client holds ${got.length} of ${expected.length} chars`)
  if (got !== expected) throw new Error('the fresh client has 5 MiB, but not the same 5 MiB')
  return { bytes: expected.length, syncMs }
})
