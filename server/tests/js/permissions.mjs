// Accounts on the socket with the stock provider: the token goes in `params`, as a browser app
// would pass it. The owner writes; a viewer sees everything, its cursor reaches the owner, but its
// edits are refused by the server and reach no one; a provider without a token is closed with 4401.
//
// usage: node permissions.mjs ws://HOST:PORT/ws SESSION_ID OWNER_TOKEN VIEWER_TOKEN

import { run, connect, waitSynced, waitFor } from './harness.mjs'

run('permissions', async ({ serverUrl, room, extra: [ownerToken, viewerToken] }) => {
  const owner = connect(serverUrl, room, { label: 'owner', params: { token: ownerToken } })
  const viewer = connect(serverUrl, room, { label: 'viewer', params: { token: viewerToken } })
  await waitSynced(owner)
  await waitSynced(viewer)
  owner.doc.getText('text').insert(0, 'written by the owner')
  await waitFor('the viewer to see the owner\'s text', () => viewer.doc.getText('text').toString() === 'written by the owner')

  viewer.awareness.setLocalStateField('user', { name: 'viewer' })
  await waitFor('the viewer\'s cursor at the owner', () =>
    [...owner.awareness.getStates().values()].some((state) => state.user && state.user.name === 'viewer'))

  viewer.doc.getText('text').insert(0, 'VIEWER ')
  // A sentinel on the same socket after the edit: the server handles a connection's messages in
  // order, so once the owner has the viewer's new awareness state it has had the edit, had the
  // server wrongly relayed it.
  viewer.awareness.setLocalStateField('user', { name: 'viewer', after: 'edit' })
  await waitFor('the viewer\'s sentinel at the owner', () =>
    [...owner.awareness.getStates().values()].some((state) => state.user && state.user.after === 'edit'))
  const fresh = connect(serverUrl, room, { label: 'fresh', params: { token: ownerToken } })
  await waitSynced(fresh)
  const ownerText = owner.doc.getText('text').toString()
  const freshText = fresh.doc.getText('text').toString()
  if (ownerText !== 'written by the owner' || freshText !== 'written by the owner') {
    throw new Error(`a viewer's edit was applied: owner sees ${JSON.stringify(ownerText)}, a fresh client ${JSON.stringify(freshText)}`)
  }

  const anonymous = connect(serverUrl, room, { label: 'anonymous' })
  await waitFor('the token-less provider to be refused', () => anonymous.closes.length > 0)
  const refusal = anonymous.closes[0]
  for (const client of [owner, viewer, fresh, anonymous]) client.provider.destroy()
  return { refusal, viewerStillConnected: viewer.closes.length === 0 }
})
