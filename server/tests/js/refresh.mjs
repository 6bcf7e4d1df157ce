// The README's refresh-and-reconnect recipe (auth-refresh.mjs, extracted from README.md by the
// Rust test) keeps a stock provider syncing past the expiry of its access token.
//
// The server checks tokens when a socket connects, so the writer is dropped the way a network
// blip drops it (its socket is closed under it) once its token is expired. y-websocket then
// reconnects with the stale token, the server closes with 4401, y-websocket stops (`closed`),
// and the recipe refreshes the token and reconnects. An edit made while disconnected and one
// made after the reconnect both reach a reader connected throughout.
//
// usage: node refresh.mjs ws://HOST:PORT/ws SESSION_ID http://HOST:PORT RECIPE_FILE ACCESS REFRESH

import { pathToFileURL } from 'node:url'
import WebSocket from 'ws'
import { run, connect, waitSynced, waitFor, sleep, log } from './harness.mjs'

/** Resolves with the close code the server gives a fresh socket using `token`. */
function probe (serverUrl, room, token) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${serverUrl}/${room}?token=${token}`)
    ws.on('close', (code) => resolve(code))
    ws.on('error', () => {})
    ws.on('message', () => ws.close(1000))
  })
}

run('refresh', async ({ serverUrl, room, extra: [apiUrl, recipeFile, accessToken, refreshToken] }) => {
  const { refreshOnExpiry } = await import(pathToFileURL(recipeFile).href)
  const writer = connect(serverUrl, room, { label: 'writer', params: { token: accessToken } })
  const reader = connect(serverUrl, room, { label: 'reader', params: { token: accessToken } })
  const tokens = { accessToken, refreshToken }
  refreshOnExpiry(writer.provider, apiUrl, tokens)
  const closed = []
  writer.provider.on('closed', (event) => closed.push(event.code))
  await waitSynced(writer)
  await waitSynced(reader)
  const text = () => reader.doc.getText('code').toString()
  writer.doc.getText('code').insert(0, 'before;')
  await waitFor('the reader to see the first edit', () => text() === 'before;')

  // Wait until the server refuses the token (its expiry plus the server's leeway).
  let code
  while ((code = await probe(serverUrl, room, accessToken)) !== 4401) {
    log(`token still accepted (close ${code}); waiting`)
    await sleep(250)
  }
  // The blip: y-websocket reconnects with the token in its URL, which is now refused.
  writer.provider.ws.close()
  await waitFor('the writer to be refused with 4401', () => closed.includes(4401), { timeoutMs: 15_000 })
  writer.doc.getText('code').insert(writer.doc.getText('code').length, 'offline;')
  await waitFor('the recipe to reconnect the writer with a new token', () => writer.provider.wsconnected && writer.provider.synced, { timeoutMs: 15_000 })
  writer.doc.getText('code').insert(writer.doc.getText('code').length, 'after;')
  await waitFor('the reader to see every edit', () => text() === 'before;offline;after;',
    { detail: () => `reader has ${JSON.stringify(text())}` })
  const result = {
    closed,
    tokenRenewed: writer.provider.params.token !== accessToken && tokens.accessToken === writer.provider.params.token,
    refreshRotated: tokens.refreshToken !== refreshToken,
    text: text()
  }
  writer.provider.destroy()
  reader.provider.destroy()
  return result
})
