// Sign in and sign up.
import { h, fill } from './dom.js'

/** `login` pre-fills the sign-in form (signing in again after an expiry). */
export function signInView (api, { message, login, onSignedIn }) {
  let mode = 'in'
  const box = h('section.card.narrow')
  const render = () => {
    const error = h('p.error', { role: 'alert', 'data-testid': 'auth-error' })
    const fail = (e) => { error.textContent = e.message }
    const field = (label, props) => h('label', {}, label, h('input', { required: true, ...props }))
    const form = mode === 'in'
      ? h('form', {
        onsubmit: async (e) => {
          e.preventDefault()
          const data = new FormData(e.target)
          try {
            await api.login(data.get('login'), data.get('password'))
            onSignedIn()
          } catch (err) { fail(err) }
        }
      },
      field('Username or email', { name: 'login', autocomplete: 'username', value: login ?? '' }),
      field('Password', { name: 'password', type: 'password', autocomplete: 'current-password' }),
      h('button.primary', { type: 'submit' }, 'Sign in'))
      : h('form', {
        onsubmit: async (e) => {
          e.preventDefault()
          const data = new FormData(e.target)
          try {
            await api.register({ username: data.get('username'), email: data.get('email'), password: data.get('password') })
            onSignedIn()
          } catch (err) { fail(err) }
        }
      },
      field('Username', { name: 'username', autocomplete: 'username', minLength: 3, maxLength: 30, pattern: '[A-Za-z0-9_]+', title: '3 to 30 letters, digits or _' }),
      field('Email', { name: 'email', type: 'email', autocomplete: 'email' }),
      field('Password', { name: 'password', type: 'password', autocomplete: 'new-password', minLength: 8, title: 'at least 8 characters' }),
      h('button.primary', { type: 'submit' }, 'Create account'))
    fill(box,
      h('h1', {}, mode === 'in' ? 'Sign in' : 'Create an account'),
      message && h('p.notice', {}, message),
      form,
      error,
      h('p.switch', {},
        mode === 'in' ? 'New here? ' : 'Have an account? ',
        h('button.link', { type: 'button', onclick: () => { mode = mode === 'in' ? 'up' : 'in'; message = ''; render() } },
          mode === 'in' ? 'Create an account' : 'Sign in')))
  }
  render()
  return box
}
