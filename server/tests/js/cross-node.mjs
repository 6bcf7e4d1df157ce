// Two stock providers on two different nodes of one Redis: each sees the other's edits and the
// Rust client's edit made before they joined.
//
// usage: node cross-node.mjs ws://NODE_A/ws ROOM ws://NODE_B/ws

import { run, connect, waitSynced, waitFor } from './harness.mjs'

run('cross-node', async ({ serverUrl, room, extra: [otherUrl] }) => {
  const onA = connect(serverUrl, room, { label: 'js on a' })
  const onB = connect(otherUrl, room, { label: 'js on b' })
  await waitSynced(onA)
  await waitSynced(onB)
  await waitFor('the rust edit on a', () => onA.doc.getText('text').toString().includes('from rust on b'))
  onA.doc.getText('text').insert(0, 'js on a ')
  onB.doc.getText('text').insert(0, 'js on b ')
  const both = (doc) => doc.getText('text').toString().includes('js on a') && doc.getText('text').toString().includes('js on b')
  await waitFor('both JS edits on both nodes', () => both(onA.doc) && both(onB.doc))
  if (onA.doc.getText('text').toString() !== onB.doc.getText('text').toString()) throw new Error('diverged')
  const text = onA.doc.getText('text').toString()
  onA.provider.destroy()
  onB.provider.destroy()
  return { text }
})
