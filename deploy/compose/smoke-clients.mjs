// The client side of deploy/compose/smoke.sh: real Yjs clients (the stock y-websocket provider,
// from server/tests/js) against the compose stack.
//
//   node smoke-clients.mjs http://LB write ws://NODE1:5000/ws ws://NODE2:5000/ws
//     signs up through the load balancer, creates a session, edits it from a client on each node
//     and one through the load balancer, and waits until all three hold all three edits.
//     Prints {"ok":true,"session":…,"token":…,"text":…}.
//   node smoke-clients.mjs http://LB read SESSION TOKEN EXPECTED
//     a fresh client through the load balancer must see EXPECTED (after the nodes restarted).
//     SESSION, TOKEN and EXPECTED are JSON strings, as `write` printed them.

import { run, connect, waitSynced, waitFor } from '../../server/tests/js/harness.mjs'

async function api (lb, path, body, token) {
  const headers = { 'content-type': 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  const reply = await fetch(lb + path, { method: 'POST', headers, body: JSON.stringify(body) })
  const json = await reply.json()
  if (!reply.ok) throw new Error(`${path}: ${reply.status} ${JSON.stringify(json)}`)
  return json
}

const wsOf = (lb) => lb.replace(/^http/, 'ws') + '/ws'
const text = (client) => client.doc.getText('code').toString()

run('compose-smoke', async ({ serverUrl: lb, room: mode, extra }) => {
  if (mode === 'write') {
    const [node1, node2] = extra
    const name = `smoke${Date.now() % 1e9}`
    const signUp = await api(lb, '/api/auth/register', { username: name, email: `${name}@example.com`, password: 'correct horse battery' })
    const token = signUp.accessToken
    const session = (await api(lb, '/api/sessions', { title: 'compose smoke', language: 'python' }, token)).id
    const params = { token }
    const clients = [
      connect(node1, session, { label: 'on node1', params }),
      connect(node2, session, { label: 'on node2', params }),
      connect(wsOf(lb), session, { label: 'through the load balancer', params })
    ]
    for (const client of clients) await waitSynced(client)
    for (const client of clients) client.doc.getText('code').insert(0, `# ${client.label}\n`)
    const all = (client) => clients.every((other) => text(client).includes(`# ${other.label}`))
    await waitFor('every edit on every client', () => clients.every(all), { detail: () => clients.map(text).join('\n---\n') })
    if (new Set(clients.map(text)).size !== 1) throw new Error('the clients diverged')
    const result = text(clients[0])
    for (const client of clients) client.provider.destroy()
    return { session, token, text: result }
  }
  if (mode === 'read') {
    const [session, token, expected] = extra.map((arg) => JSON.parse(arg))
    const client = connect(wsOf(lb), session, { label: 'reader', params: { token } })
    await waitSynced(client)
    if (text(client) !== expected) throw new Error(`after the restart the document is ${JSON.stringify(text(client))}, expected ${JSON.stringify(expected)}`)
    client.provider.destroy()
    return { text: text(client) }
  }
  throw new Error(`unknown mode ${mode}`)
})
