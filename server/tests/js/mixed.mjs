// A JS client (yjs + y-websocket) and the Rust yrs client of server/tests/support in one room.
// The Rust test drives the other side; the exchange, in order:
//
//   1. Rust writes  text "héllo 🌍 from yrs", map.rust = "yrs", list ["rust-1"]   (before we start)
//   2. JS waits for that, then inserts "[js]" right after the emoji (a UTF-16 offset: the emoji is
//      two code units in both Yjs and yrs with OffsetKind::Utf16), sets map.js = "yjs", pushes "js-1"
//   3. Rust waits for that, then inserts "[rs]" right before the emoji and sets map.ack = "rust saw js"
//   4. JS waits for the ack and "[rs]", checks the exact merged content and prints it, so Rust can
//      compare it with its own copy
//
// usage: node mixed.mjs ws://HOST:PORT/ws ROOM

import { run, connect, waitSynced, waitFor, snapshot, preview } from './harness.mjs'

const EXPECTED_TEXT = 'héllo [rs]🌍[js] from yrs'

run('mixed', async ({ serverUrl, room }) => {
  const js = connect(serverUrl, room, { label: 'js' })
  await waitSynced(js)
  const text = js.doc.getText('text')
  const map = js.doc.getMap('map')
  const list = js.doc.getArray('list')
  const detail = () => preview(snapshot(js.doc))
  await waitFor("the Rust client's edits", () => text.toString().includes('from yrs') && map.get('rust') === 'yrs', { detail })

  js.doc.transact(() => {
    text.insert(text.toString().indexOf('🌍') + '🌍'.length, '[js]')
    map.set('js', 'yjs')
    list.push(['js-1'])
  })

  await waitFor("the Rust client's acknowledgement", () => map.get('ack') === 'rust saw js' && text.toString().includes('[rs]'), { detail })
  const content = snapshot(js.doc)
  if (content.text !== EXPECTED_TEXT) throw new Error(`merged text ${JSON.stringify(content.text)}, expected ${JSON.stringify(EXPECTED_TEXT)}`)
  if (content.list.join(',') !== 'rust-1,js-1') throw new Error(`merged list ${JSON.stringify(content.list)}`)
  return { content }
})
