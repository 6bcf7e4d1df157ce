// What the JS load scripts (chat-bench.mjs, exec-bench.mjs) share: JSON POSTs to the API, and the
// type-100 app frames of the socket. Uses the `ws` package the JS tests install
// (server/tests/js/node_modules).
import { createRequire } from 'node:module'
const require = createRequire(new URL('../server/tests/js/package.json', import.meta.url))
export const WebSocket = require('ws')

/** POST `body` as JSON to `base + path` (with a bearer `token` if given); the JSON answer. */
export async function post (base, path, body, token) {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body)
  })
  if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`)
  return res.json()
}

/** A type-100 app message: varUint(100) then varString(json). */
export function appFrame (json) {
  const text = Buffer.from(JSON.stringify(json))
  const len = []
  let n = text.length
  while (n > 127) { len.push((n & 127) | 128); n >>>= 7 }
  len.push(n)
  return Buffer.concat([Buffer.from([100, ...len]), text])
}

/** The JSON of a type-100 frame, or null. */
export function appJson (data) {
  if (data[0] !== 100) return null
  let i = 1, len = 0, shift = 0
  for (;;) { const b = data[i++]; len |= (b & 127) << shift; shift += 7; if (b < 128) break }
  return JSON.parse(data.subarray(i, i + len).toString())
}
