// The login screen and the forced change of a one-time password.
import { api, el, panel } from '../app.js';

/** Renders the login form; calls `onDone(session)` once logged in. */
export function render(main, { message = '', onDone }) {
  const user = el('input', { id: 'login-user', name: 'username', autocomplete: 'username', value: 'admin', required: true });
  const password = el('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = el('button', { class: 'primary', id: 'login-submit', type: 'submit' }, 'Log in');
  const note = el('p', { id: 'login-message', class: message ? 'notice' : 'muted' },
    message || 'This appliance sees every packet of your network: log in to look.');
  const form = el('form', {}, el('label', {}, 'User', user), el('label', {}, 'Password', password), submit, note);
  main.append(el('div', { class: 'login' }, panel('tapir · log in', form)));
  password.focus();
  let timer = null;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      const r = await api('/auth/login', { method: 'POST', json: { username: user.value, password: password.value } });
      onDone({ user: r.user, role: r.role, csrf: r.csrf_token, authEnabled: true, mustChange: r.must_change_password });
    } catch (err) {
      password.value = '';
      note.className = 'error';
      if (err.retryAfter) {
        // Throttled: count down, then let the user try again.
        let left = err.retryAfter;
        const tick = () => {
          note.textContent = `${err.status === 429 ? 'Too many wrong passwords.' : err.message + '.'} Try again in ${left} s.`;
          if (left-- <= 0) { clearInterval(timer); submit.disabled = false; note.textContent = 'Try again.'; }
        };
        clearInterval(timer);
        tick();
        timer = setInterval(tick, 1000);
        return;
      }
      note.textContent = err.message;
    }
    submit.disabled = false;
  });
}

/** The change-password form (used at first login and in the settings). */
export function passwordForm(onDone) {
  const current = el('input', { id: 'pw-current', type: 'password', autocomplete: 'current-password', required: true });
  const next = el('input', { id: 'pw-new', type: 'password', autocomplete: 'new-password', minlength: 8, required: true });
  const again = el('input', { id: 'pw-again', type: 'password', autocomplete: 'new-password', minlength: 8, required: true });
  const note = el('p', { class: 'muted' }, 'At least 8 characters.');
  const form = el('form', { class: 'stack' },
    el('label', {}, 'Current password', current), el('label', {}, 'New password', next),
    el('label', {}, 'New password, again', again),
    el('button', { class: 'primary', id: 'pw-submit', type: 'submit' }, 'Change password'), note);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (next.value !== again.value) { note.className = 'error'; note.textContent = 'The new passwords differ.'; return; }
    try {
      await api('/auth/password', { method: 'POST', json: { current_password: current.value, new_password: next.value } });
      form.reset();
      note.className = 'muted';
      note.textContent = 'Password changed.';
      onDone?.();
    } catch (err) {
      note.className = 'error';
      note.textContent = err.message;
    }
  });
  return form;
}

export function renderPasswordChange(main, onDone) {
  main.append(el('div', { class: 'login' }, panel('Choose your password',
    el('p', { class: 'notice' }, 'You logged in with a one-time password. Choose your own to continue.'),
    passwordForm(onDone))));
}
