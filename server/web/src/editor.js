// The code editor: CodeMirror 6 bound to the room's `Y.Text` named `code` by y-codemirror.next
// (shared undo, remote cursors and selections from awareness), with the session's language mode
// and a read-only switch.
import { EditorView, basicSetup } from 'codemirror'
import { Compartment, EditorState } from '@codemirror/state'
import * as Y from 'yjs'
import { yCollab } from 'y-codemirror.next'

// Each language mode is its own chunk, fetched when a session needs it: together they weigh
// more than the rest of the client.
const legacy = (load) => async () => {
  const [{ StreamLanguage }, mode] = await Promise.all([import('@codemirror/language'), load()])
  return StreamLanguage.define(mode)
}
const MODES = {
  javascript: async () => (await import('@codemirror/lang-javascript')).javascript(),
  typescript: async () => (await import('@codemirror/lang-javascript')).javascript({ typescript: true }),
  python: async () => (await import('@codemirror/lang-python')).python(),
  java: async () => (await import('@codemirror/lang-java')).java(),
  cpp: async () => (await import('@codemirror/lang-cpp')).cpp(),
  c: async () => (await import('@codemirror/lang-cpp')).cpp(),
  csharp: legacy(async () => (await import('@codemirror/legacy-modes/mode/clike')).csharp),
  php: async () => (await import('@codemirror/lang-php')).php({ plain: true }),
  ruby: legacy(async () => (await import('@codemirror/legacy-modes/mode/ruby')).ruby),
  go: async () => (await import('@codemirror/lang-go')).go(),
  rust: async () => (await import('@codemirror/lang-rust')).rust()
}

/** The nonce the server put in the page for the style elements CodeMirror adds (see the CSP). */
function cspNonce () {
  return document.querySelector('meta[name="csp-nonce"]')?.content ?? ''
}

export class Editor {
  /** `room` gives the text and the awareness; `parent` is the element to mount in. */
  constructor ({ room, parent, language, readOnly }) {
    this.language = new Compartment()
    this.access = new Compartment()
    this.undo = new Y.UndoManager(room.text)
    this.view = new EditorView({
      parent,
      state: EditorState.create({
        doc: room.text.toString(),
        extensions: [
          basicSetup,
          EditorView.cspNonce.of(cspNonce()),
          EditorView.contentAttributes.of({ 'aria-label': 'Code', 'data-testid': 'editor' }),
          this.language.of([]),
          this.access.of(access(readOnly)),
          yCollab(room.text, room.provider.awareness, { undoManager: this.undo })
        ]
      })
    })
    this.setLanguage(language)
  }

  /** Switches the highlighting once the language's chunk is loaded (the last call wins). */
  async setLanguage (language) {
    if (language === this.languageName) return
    this.languageName = language
    const extension = await (MODES[language] ?? MODES.javascript)().catch(() => [])
    if (this.languageName === language && !this.destroyed) {
      this.view.dispatch({ effects: this.language.reconfigure(extension) })
    }
  }

  setReadOnly (readOnly) {
    this.view.dispatch({ effects: this.access.reconfigure(access(readOnly)) })
  }

  destroy () {
    this.destroyed = true
    this.view.destroy()
    this.undo.destroy()
  }
}

/** Read-only both ways: no edits from commands, and no typing into the content. */
function access (readOnly) {
  return [EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)]
}
