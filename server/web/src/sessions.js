// My sessions: the list, create, delete.
import { h, fill, ago } from './dom.js'

export const LANGUAGES = ['javascript', 'python', 'java', 'cpp', 'csharp', 'php', 'ruby', 'go', 'rust']

export function sessionsView ({ api, parent }) {
  const list = h('ul.sessions', { 'data-testid': 'sessions' })
  const error = h('p.error', { role: 'alert' })
  const load = async () => {
    try {
      const { sessions } = await api.request('GET', '/api/sessions?limit=100')
      fill(list, sessions.length === 0 ? h('li.empty', {}, 'No sessions yet: create one.') : sessions.map(item))
    } catch (e) { error.textContent = e.message }
  }
  const item = (s) => h('li', { dataset: { id: s.id } },
    h('a.title', { href: `#/s/${s.id}` }, s.title),
    h('span.badge', {}, s.language),
    h('span.badge', {}, s.yourRole ?? ''),
    s.isLocked && h('span.badge.locked', {}, 'locked'),
    h('span.muted', {}, `updated ${ago(s.updatedAt)}`),
    s.yourRole === 'owner' && h('button.link.danger', {
      onclick: async () => {
        if (!confirm(`Delete "${s.title}" for everyone?`)) return
        try {
          await api.request('DELETE', `/api/sessions/${s.id}`)
          load()
        } catch (e) { error.textContent = e.message }
      }
    }, 'Delete'))
  const create = h('form.create', {
    onsubmit: async (e) => {
      e.preventDefault()
      const data = new FormData(e.target)
      try {
        const session = await api.request('POST', '/api/sessions', {
          title: data.get('title'), language: data.get('language'), isPublic: data.get('public') === 'on'
        })
        location.hash = `#/s/${session.id}`
      } catch (err) { error.textContent = err.message }
    }
  },
  h('input', { name: 'title', placeholder: 'New session title', required: true, maxLength: 100, 'aria-label': 'Title' }),
  h('select', { name: 'language', 'aria-label': 'Language' }, LANGUAGES.map((l) => h('option', { value: l, selected: l === 'python' }, l))),
  h('label.inline', {}, h('input', { type: 'checkbox', name: 'public' }), 'public'),
  h('button.primary', { type: 'submit' }, 'Create'))
  fill(parent, h('section.card', {}, h('h1', {}, 'My sessions'), create, error, list))
  load()
  return { destroy () {} }
}
