// The share dialog (owner and admins): invite a user with a role, change a role, remove.
import { h, fill } from './dom.js'

const ROLES = ['viewer', 'editor', 'admin']

export function shareDialog ({ api, session, onChange }) {
  const dialog = h('dialog.share', { 'data-testid': 'share-dialog' })
  const list = h('ul.collaborators')
  const error = h('p.error', { role: 'alert' })
  const base = `/api/sessions/${session.id}/collaborators`
  const apply = async (method, path, body) => {
    try {
      // Removing answers 204 without a body: read the session again.
      session = await api.request(method, path, body) ?? await api.request('GET', `/api/sessions/${session.id}`)
      error.textContent = ''
      onChange(session)
      render()
      return true
    } catch (e) {
      error.textContent = e.message
      return false
    }
  }
  const render = () => fill(list, session.collaborators.length === 0
    ? h('li.muted', {}, 'Nobody else yet.')
    : session.collaborators.map((c) => h('li', { dataset: { user: c.username ?? c.userId } },
      h('span.name', {}, c.username ?? c.userId, !c.isActive && h('span.muted', {}, ' (invited)')),
      h('select', {
        'aria-label': `Role of ${c.username ?? c.userId}`,
        onchange: (e) => apply('PUT', `${base}/${c.userId}`, { role: e.target.value })
      }, ROLES.map((r) => h('option', { value: r, selected: r === c.role }, r))),
      h('button.link.danger', {
        onclick: () => confirm(`Remove ${c.username ?? c.userId} from this session?`) && apply('DELETE', `${base}/${c.userId}`)
      }, 'Remove'))))
  const invite = h('form.invite', {
    onsubmit: async (e) => {
      e.preventDefault()
      const data = new FormData(e.target)
      const who = String(data.get('who')).trim()
      const body = { [who.includes('@') ? 'email' : 'username']: who, role: data.get('role') }
      if (await apply('POST', base, body)) e.target.reset()
    }
  },
  h('input', { name: 'who', placeholder: 'Username or email', required: true, 'aria-label': 'Username or email' }),
  h('select', { name: 'role', 'aria-label': 'Role' }, ROLES.map((r) => h('option', { value: r, selected: r === 'editor' }, r))),
  h('button.primary', { type: 'submit' }, 'Invite'))
  fill(dialog, h('h2', {}, `Share "${session.title}"`), invite, error, list,
    h('form', { method: 'dialog' }, h('button', {}, 'Close')))
  dialog.addEventListener('close', () => dialog.remove())
  document.body.append(dialog)
  render()
  dialog.showModal()
}
