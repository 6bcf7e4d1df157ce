// Issue 9, item 2: updates that reuse existing (client, clock) ids with other content must not
// split a room. Per round, in a fresh room: a stock y-websocket client A types; a forger, on a raw
// socket, sends updates made by Y.Docs that carry A's client id but saw only part of A's history
// (so they reuse A's ids for other text, other types, other positions), merges of random past
// updates, and replays; A keeps typing. Then a client B joins. A (connected throughout) and B
// (joined after) must hold the same document, and A's Yjs must never have thrown.
//
// node forgery.mjs <serverUrl> <room> [rounds] [seed]

import WebSocket from 'ws'
import * as encoding from 'lib0/encoding'
import { run, connect, waitSynced, waitFor, snapshot, canonical, preview, prng, Y, log } from './harness.mjs'

const errors = []
process.removeAllListeners('uncaughtException')
// A Yjs exception inside the provider's message handler surfaces here: that is a client the
// server split (Yjs logs "Unexpected case"), recorded rather than fatal so the round can report it.
process.on('uncaughtException', (error) => errors.push(String(error && error.stack || error)))

function syncUpdateFrame (update) {
  const encoder = encoding.createEncoder()
  encoding.writeVarUint(encoder, 0) // sync
  encoding.writeVarUint(encoder, 2) // update
  encoding.writeVarUint8Array(encoder, update)
  return encoding.toUint8Array(encoder)
}

/** A random edit on `doc`, in one transaction. */
function edit (doc, rnd) {
  doc.transact(() => {
    const text = doc.getText('text')
    const map = doc.getMap('map')
    const list = doc.getArray('list')
    const choice = Math.floor(rnd() * 6)
    if (choice < 3 || text.length === 0) {
      text.insert(Math.floor(rnd() * (text.length + 1)), 'abcxyz'.slice(0, 1 + Math.floor(rnd() * 5)))
    } else if (choice === 3) {
      const at = Math.floor(rnd() * text.length)
      text.delete(at, Math.min(1 + Math.floor(rnd() * 3), text.length - at))
    } else if (choice === 4) {
      map.set('k' + Math.floor(rnd() * 4), Math.floor(rnd() * 1000))
    } else {
      list.insert(Math.floor(rnd() * (list.length + 1)), [Math.floor(rnd() * 1000)])
    }
  })
}

async function openRaw (url) {
  const ws = new WebSocket(url)
  ws.binaryType = 'arraybuffer'
  const state = { closed: null }
  ws.on('close', (code) => { state.closed = code })
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  return { ws, state }
}

run('forgery', async ({ serverUrl, room, extra }) => {
  const rounds = Number(extra[0] || 20)
  const seed = Number(extra[1] || 9)
  let forged = 0
  let refusedSockets = 0
  for (let round = 0; round < rounds; round++) {
    const rnd = prng(seed * 1000 + round)
    const name = `${room}-${round}`
    const a = connect(serverUrl, name, { label: `A${round}` })
    await waitSynced(a)
    const history = []
    a.doc.on('update', (update) => history.push(update))
    for (let i = 0; i < 8; i++) edit(a.doc, rnd)

    let forger = await openRaw(`${serverUrl}/${name}`)
    for (let f = 0; f < 12; f++) {
      let update
      const kind = Math.floor(rnd() * 3)
      if (kind === 0 || history.length === 0) {
        // A document with A's id that saw only some of A's history.
        const doc = new Y.Doc()
        doc.clientID = a.doc.clientID
        for (const past of history) if (rnd() < 0.4) Y.applyUpdate(doc, past)
        const before = Y.encodeStateVector(doc)
        for (let i = 0; i < 1 + Math.floor(rnd() * 3); i++) edit(doc, rnd)
        update = rnd() < 0.5 ? Y.encodeStateAsUpdate(doc) : Y.encodeStateAsUpdate(doc, before)
      } else if (kind === 1) {
        const parts = history.filter(() => rnd() < 0.3)
        update = Y.mergeUpdates(parts.length ? parts : [history[0]])
      } else {
        update = history[Math.floor(rnd() * history.length)]
      }
      if (forger.state.closed !== null) {
        refusedSockets++
        forger = await openRaw(`${serverUrl}/${name}`)
      }
      forger.ws.send(syncUpdateFrame(update))
      forged++
      if (rnd() < 0.5) edit(a.doc, rnd)
    }
    // Everything sent so far is handled before A's sentinel (per-room order): wait for B to see it.
    a.doc.getMap('map').set('sentinel', round)
    const b = connect(serverUrl, name, { label: `B${round}` })
    await waitSynced(b)
    await waitFor(`B${round} sees the sentinel`, () => b.doc.getMap('map').get('sentinel') === round)
    await waitFor(`A${round} and B${round} agree`, () => canonical(snapshot(a.doc)) === canonical(snapshot(b.doc)), {
      timeoutMs: 3000,
      detail: () => `A ${preview(snapshot(a.doc))}\nB ${preview(snapshot(b.doc))}`
    }).catch((error) => errors.push(error.message))
    if (errors.length) {
      throw new Error(`round ${round} split the room:\n${errors.join('\n')}`)
    }
    forger.ws.close()
    a.provider.destroy()
    b.provider.destroy()
  }
  log(`${forged} forged updates, ${refusedSockets} forger sockets closed by the server`)
  return { rounds, forged, refusedSockets }
}, { timeoutMs: 120_000 })
