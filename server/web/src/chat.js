// The chat panel: the history sent on join, live messages, and the sender's own messages marked
// delivered when the server answers `chat_saved` (or failed, with the server's reason).
//
// A message is kept until the server says it is saved: one written while disconnected waits and
// is sent on reconnect, and one sent just before a connection dropped is sent again with the same
// nonce (the server counts a repeated nonce as the same message: no second broadcast, and
// `chat_saved` names the first one's id).
import { h, fill, clock, colours, nonce as newNonce } from './dom.js'

export class ChatPanel {
  constructor ({ room, parent }) {
    this.room = room
    this.pending = new Map() // nonce → { li, text }, in the order written, until chat_saved
    this.list = h('ol.messages', { 'data-testid': 'chat-messages', 'aria-live': 'polite' })
    this.input = h('input', { name: 'text', placeholder: 'Message', maxLength: 2000, autocomplete: 'off', 'aria-label': 'Chat message', 'data-testid': 'chat-input' })
    this.error = h('p.error', { role: 'alert', 'data-testid': 'chat-error' })
    fill(parent, h('h2', {}, 'Chat'), this.list,
      h('form.chat-form', { onsubmit: (e) => { e.preventDefault(); this.write() } }, this.input, h('button', { type: 'submit' }, 'Send')),
      this.error)
    room.addEventListener('app', (e) => this.onApp(e.detail))
  }

  write () {
    const text = this.input.value.trim()
    if (!text) return
    this.error.textContent = ''
    this.input.value = ''
    const nonce = newNonce()
    const li = this.line({ user: { id: this.room.user.id, username: this.room.user.username }, text, ts: Date.now() }, 'waiting')
    this.pending.set(nonce, { li, text })
    this.list.append(li)
    this.scroll()
    this.send(nonce)
  }

  /** Sends a pending message (again); it waits for the next connection when offline. */
  send (nonce) {
    const { li, text } = this.pending.get(nonce)
    const sent = this.room.send({ type: 'chat', text, nonce })
    this.mark(li, sent ? 'sending' : 'waiting', sent ? 'sending…' : 'waiting for the connection…')
  }

  onApp (m) {
    if (m.type === 'chat_history') {
      // Sent on every (re)connect: the room's recent messages, then ours still unsaved, sent again.
      // One of ours the room already has (its recent list keeps nonces) stays in its place.
      const placed = new Set()
      fill(this.list, m.messages.map((post) => {
        const mine = post.nonce && this.pending.get(post.nonce)
        if (!mine) return this.line(post, 'delivered')
        placed.add(post.nonce)
        mine.li.dataset.id = post.id
        return mine.li
      }))
      for (const [nonce, { li }] of this.pending) {
        if (!placed.has(nonce)) this.list.append(li)
        this.send(nonce)
      }
      this.scroll()
    } else if (m.type === 'chat') {
      const mine = m.nonce && this.pending.get(m.nonce)
      if (mine) {
        // Our own message as the room saw it: keep its place, take the server's id and time.
        mine.li.dataset.id = m.id
        mine.li.querySelector('time').textContent = clock(m.ts)
        this.mark(mine.li, 'sent', 'sent')
      } else {
        this.list.append(this.line(m, 'delivered'))
        this.scroll()
      }
    } else if (m.type === 'chat_saved') {
      const mine = this.pending.get(m.nonce)
      if (!mine) return
      this.pending.delete(m.nonce)
      // Saved before a reconnect, so the history has it too: keep one of the two.
      const twin = [...this.list.children].find((li) => li !== mine.li && li.dataset.id === m.id)
      if (twin) mine.li.remove()
      const li = twin ?? mine.li
      li.dataset.id = m.id
      this.mark(li, 'delivered', '✓ delivered')
    } else if (m.type === 'error' && m.nonce && this.pending.has(m.nonce)) {
      const { li } = this.pending.get(m.nonce)
      this.pending.delete(m.nonce)
      this.mark(li, 'failed', `not delivered: ${m.message}`)
    }
  }

  mark (li, state, label) {
    li.dataset.state = state
    li.querySelector('.state').textContent = label
  }

  line (post, state) {
    return h('li', { dataset: { state, id: post.id ?? '' } },
      h('span.author', { style: `color:${colours(post.user.id).color}` }, post.user.username),
      h('time', {}, clock(post.ts)),
      h('span.state', {}, ''),
      h('p.text', {}, post.text))
  }

  scroll () {
    this.list.scrollTop = this.list.scrollHeight
  }
}
