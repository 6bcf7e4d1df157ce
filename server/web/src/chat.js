// The chat panel: the history sent on join, live messages, and the sender's own messages marked
// delivered when the server answers `chat_saved` (or failed, with the server's reason).
import { h, fill, clock, colours } from './dom.js'

export class ChatPanel {
  constructor ({ room, parent }) {
    this.room = room
    this.pending = new Map() // nonce → the <li> of a message sent, until the server's answer
    this.list = h('ol.messages', { 'data-testid': 'chat-messages', 'aria-live': 'polite' })
    this.input = h('input', { name: 'text', placeholder: 'Message', maxLength: 2000, autocomplete: 'off', 'aria-label': 'Chat message', 'data-testid': 'chat-input' })
    this.button = h('button', { type: 'submit' }, 'Send')
    this.error = h('p.error', { role: 'alert', 'data-testid': 'chat-error' })
    fill(parent, h('h2', {}, 'Chat'), this.list,
      h('form.chat-form', { onsubmit: (e) => { e.preventDefault(); this.send() } }, this.input, this.button), this.error)
    room.addEventListener('app', (e) => this.onApp(e.detail))
  }

  setConnected (connected) {
    this.button.disabled = !connected
  }

  send () {
    const text = this.input.value.trim()
    if (!text) return
    const nonce = this.room.send({ type: 'chat', text })
    if (!nonce) {
      this.error.textContent = 'Offline: the message was not sent.'
      return
    }
    this.error.textContent = ''
    this.input.value = ''
    const li = this.line({ user: { id: this.room.user.id, username: this.room.user.username }, text, ts: Date.now() })
    li.dataset.state = 'sending'
    this.pending.set(nonce, li)
    this.list.append(li)
    this.scroll()
  }

  onApp (m) {
    if (m.type === 'chat_history') {
      fill(this.list, m.messages.map((post) => this.line(post, 'delivered')))
      this.scroll()
    } else if (m.type === 'chat') {
      const mine = m.nonce && this.pending.get(m.nonce)
      if (mine) {
        // Our own message as the room saw it: keep its place, take the server's id and time.
        mine.dataset.id = m.id
        mine.querySelector('time').textContent = clock(m.ts)
        if (mine.dataset.state === 'sending') mine.dataset.state = 'sent'
      } else {
        this.list.append(this.line(m, 'delivered'))
        this.scroll()
      }
    } else if (m.type === 'chat_saved') {
      const li = this.pending.get(m.nonce)
      if (li) {
        this.pending.delete(m.nonce)
        li.dataset.state = 'delivered'
        li.dataset.id = m.id
        li.querySelector('.state').textContent = '✓ delivered'
      }
    } else if (m.type === 'error' && m.nonce && this.pending.has(m.nonce)) {
      const li = this.pending.get(m.nonce)
      this.pending.delete(m.nonce)
      li.dataset.state = 'failed'
      li.querySelector('.state').textContent = `not delivered: ${m.message}`
    }
  }

  line (post, state) {
    return h('li', { dataset: { state: state ?? 'sending', id: post.id ?? '' } },
      h('span.author', { style: `color:${colours(post.user.id).color}` }, post.user.username),
      h('time', {}, clock(post.ts)),
      h('span.state', {}, state === 'delivered' ? '' : 'sending…'),
      h('p.text', {}, post.text))
  }

  scroll () {
    this.list.scrollTop = this.list.scrollHeight
  }
}
