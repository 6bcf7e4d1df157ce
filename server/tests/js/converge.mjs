// Three real y-websocket clients in one room edit Y.Text, Y.Map and Y.Array concurrently and must
// converge to identical content that holds every edit.
//
// usage: node converge.mjs ws://HOST:PORT/ws ROOM [SEED]
//
// Each round every client inserts a unique token into the text between two tokens at random, sets its own map
// key plus one contested key, and pushes to the array; every 5th round it deletes the token it
// wrote in the previous round. Some rounds are issued back to back (truly concurrent: no client has
// seen the others' edits), others after a short pause (interleaved with incoming updates).

import { run, connect, waitSynced, waitFor, snapshot, canonical, preview, prng, sleep } from './harness.mjs'

const CLIENTS = 3
const ROUNDS = 30

const token = (client, round) => `<${client}:${round}>`

run('converge', async ({ serverUrl, room, extra }) => {
  const seed = Number(extra[0] ?? 1)
  const random = prng(seed)
  const clients = Array.from({ length: CLIENTS }, (_, i) => connect(serverUrl, room, { label: `client${i}` }))
  await Promise.all(clients.map((c) => waitSynced(c)))

  const deleted = new Set()
  for (let round = 0; round < ROUNDS; round++) {
    clients.forEach((c, i) => {
      const text = c.doc.getText('text')
      c.doc.transact(() => {
        // Insert between tokens (never inside one), so every token stays whole and can be counted.
        const gaps = [0, ...[...text.toString().matchAll(/>/g)].map((m) => m.index + 1)]
        text.insert(gaps[Math.floor(random() * gaps.length)], token(i, round))
        if (round % 5 === 4) {
          // Only client i ever deletes its own tokens, so it is present locally.
          const mine = token(i, round - 1)
          text.delete(text.toString().indexOf(mine), mine.length)
          deleted.add(mine)
        }
        c.doc.getMap('map').set(`c${i}-r${round}`, { client: i, round })
        c.doc.getMap('map').set('contested', `client${i} round${round}`)
        c.doc.getArray('list').push([`${i}.${round}`])
      })
    })
    if (random() < 0.5) await sleep(Math.floor(random() * 4))
  }

  const views = () => clients.map((c) => canonical(snapshot(c.doc)))
  const detail = () => views().map((v, i) => `client${i}: ${preview(v)}`).join('\n')
  await waitFor(
    'every client to hold all array items',
    () => clients.every((c) => c.doc.getArray('list').length === CLIENTS * ROUNDS),
    { detail }
  )
  await waitFor('identical content on every client', () => new Set(views()).size === 1, { detail })

  // Identical is not enough: every edit must be there (and every deleted token gone).
  const { text, map, list } = snapshot(clients[0].doc)
  for (let i = 0; i < CLIENTS; i++) {
    for (let round = 0; round < ROUNDS; round++) {
      const t = token(i, round)
      const count = text.split(t).length - 1
      const expected = deleted.has(t) ? 0 : 1
      if (count !== expected) throw new Error(`token ${t} appears ${count} times, expected ${expected}: ${preview(text)}`)
      if (map[`c${i}-r${round}`]?.round !== round) throw new Error(`map key c${i}-r${round} missing: ${preview(map)}`)
      if (!list.includes(`${i}.${round}`)) throw new Error(`list item ${i}.${round} missing`)
    }
  }
  const expectedLength = [...Array(CLIENTS).keys()]
    .flatMap((i) => [...Array(ROUNDS).keys()].map((r) => token(i, r)))
    .filter((t) => !deleted.has(t))
    .reduce((sum, t) => sum + t.length, 0)
  if (text.length !== expectedLength) throw new Error(`text has ${text.length} chars, expected ${expectedLength}`)
  if (!/^client\d round\d+$/.test(map.contested)) throw new Error(`contested key: ${map.contested}`)

  return { clients: CLIENTS, rounds: ROUNDS, seed, textLength: text.length, listLength: list.length, mapKeys: Object.keys(map).length }
})
