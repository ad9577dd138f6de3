// The inspector page: builds its view of the agent tree from the protocol events it is sent
// (docs/PROTOCOL.md §4) and answers approvals through the server. Every text shown comes from
// the model, the repository or a tool: it is set as text, never parsed as HTML.

/** @typedef {{ id: string, session_id: string | null, seq: number | null, msg: Record<string, any> }} Event */

const LOG_LIMIT = 2000;
const HISTORY_TYPES = new Set([
  'user_message',
  'agent_message',
  'agent_reasoning',
  'exec_command_end',
  'patch_apply_end',
  'mcp_tool_call_end',
  'agent_spawned',
  'agent_status',
  'error',
  'warning',
  'task_started',
  'task_complete',
  'turn_aborted',
  'entered_review_mode',
  'exited_review_mode',
  'context_compacted',
]);

/** @type {Map<string, any>} */
let sessions = new Map();
/** @type {Event[]} */
let log = [];
let selected = null;
let scheduled = false;

const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function session(id) {
  let s = sessions.get(id);
  if (!s) {
    s = {
      id,
      parent: null,
      depth: 0,
      worker: '?',
      model: '',
      nickname: null,
      role: null,
      base: 'idle',
      closed: false,
      tokens: null,
      calls: new Map(),
      pending: new Map(),
      history: [],
    };
    sessions.set(id, s);
  }
  return s;
}

function stateOf(s) {
  if (s.closed) return 'closed';
  if (s.pending.size > 0) return 'awaiting approval';
  if (s.base === 'running' && [...s.calls.values()].some((c) => c.state === 'running')) return 'running tools';
  return s.base;
}

function commandText(command) {
  return command.map((part) => (/^[\w@%+=:,./-]+$/.test(part) ? part : `'${part.replaceAll("'", "'\\''")}'`)).join(' ');
}

function summary(msg) {
  switch (msg.type) {
    case 'exec_approval_request':
    case 'exec_command_begin':
      return commandText(msg.command);
    case 'exec_command_end':
      return `exit ${msg.exit_code}`;
    case 'apply_patch_approval_request':
    case 'patch_apply_begin':
      return Object.keys(msg.changes).join(', ');
    case 'tool_approval_request':
    case 'tool_call_begin':
      return `${msg.tool}(${JSON.stringify(msg.arguments ?? {})})`;
    case 'tool_call_end':
      return `${msg.tool} ${msg.success ? 'done' : 'failed'}`;
    case 'agent_message':
    case 'user_message':
      return msg.message;
    case 'agent_reasoning':
      return msg.text;
    case 'agent_spawned':
      return `${msg.nickname ?? msg.agent_id}: ${msg.prompt}`;
    case 'agent_status':
      return `${msg.agent_id.slice(0, 8)} ${msg.status}${msg.message ? `: ${msg.message}` : ''}`;
    case 'error':
    case 'warning':
    case 'stream_error':
    case 'background_event':
      return msg.message;
    case 'task_complete':
      return msg.last_agent_message ?? '';
    case 'token_count':
      return msg.info ? `${msg.info.total_token_usage.total_tokens} tokens` : '';
    case 'mcp_tool_call_begin':
      return `${msg.server}.${msg.tool}`;
    case 'session_configured':
      return `${msg.model} on ${msg.worker_id} in ${msg.cwd}`;
    default:
      return '';
  }
}

/** @param {Event} event */
function apply(event) {
  const { msg } = event;
  if (!msg.type.endsWith('_delta')) {
    log.push(event);
    if (log.length > LOG_LIMIT) log.splice(0, log.length - LOG_LIMIT);
  }
  if (event.session_id === null) return;
  const s = session(event.session_id);
  if (HISTORY_TYPES.has(msg.type) || msg.type.endsWith('_begin')) s.history.push(event);
  switch (msg.type) {
    case 'session_configured':
      s.parent = msg.parent_session_id;
      s.depth = msg.depth;
      s.worker = msg.worker_id;
      s.model = msg.model;
      s.closed = false;
      break;
    case 'agent_spawned': {
      const child = session(msg.agent_id);
      child.parent = msg.parent_session_id;
      child.nickname = msg.nickname ?? null;
      child.prompt = msg.prompt;
      break;
    }
    case 'task_started':
      s.base = 'running';
      s.calls = new Map();
      break;
    case 'agent_message_delta':
    case 'agent_reasoning_delta':
    case 'agent_message':
    case 'agent_reasoning':
      if (s.base === 'running') s.base = 'sampling';
      break;
    case 'exec_approval_request':
    case 'apply_patch_approval_request':
    case 'tool_approval_request':
      s.pending.set(msg.call_id, {
        event,
        kind: msg.type === 'exec_approval_request' ? 'exec' : msg.type === 'apply_patch_approval_request' ? 'patch' : 'tool',
      });
      s.calls.set(msg.call_id, { what: summary(msg), state: 'awaiting approval' });
      break;
    case 'exec_command_begin':
    case 'patch_apply_begin':
    case 'mcp_tool_call_begin':
    case 'tool_call_begin':
      s.pending.delete(msg.call_id);
      s.calls.set(msg.call_id, { what: summary(msg), state: 'running' });
      if (s.base === 'sampling') s.base = 'running';
      break;
    case 'exec_command_end':
    case 'patch_apply_end':
    case 'mcp_tool_call_end':
    case 'tool_call_end': {
      const call = s.calls.get(msg.call_id) ?? { what: msg.call_id };
      const ok =
        msg.type === 'exec_command_end'
          ? msg.exit_code === 0
          : msg.type === 'patch_apply_end' || msg.type === 'tool_call_end'
            ? msg.success
            : msg.error === undefined;
      s.calls.set(msg.call_id, { ...call, state: ok ? 'done' : 'failed' });
      break;
    }
    case 'token_count':
      if (msg.info) s.tokens = msg.info.total_token_usage;
      break;
    case 'entered_review_mode':
      s.base = 'reviewing';
      break;
    case 'exited_review_mode':
      s.base = 'running';
      break;
    case 'context_compacted':
      s.base = 'compacting';
      break;
    case 'task_complete':
    case 'turn_aborted':
      s.base = 'idle';
      for (const [id, call] of s.calls) if (call.state === 'awaiting approval') s.calls.set(id, { ...call, state: 'not run' });
      s.pending.clear();
      break;
    case 'shutdown_complete':
      s.closed = true;
      s.pending.clear();
      break;
  }
}

function label(s) {
  return s.nickname ?? (s.parent === null ? `session ${s.id.slice(0, 8)}` : `agent ${s.id.slice(0, 8)}`);
}

function badge(state) {
  return el('span', { class: `badge state-${state.replaceAll(' ', '-')}` }, state);
}

function tokensText(tokens) {
  return tokens ? `${tokens.total_tokens} tok (${tokens.input_tokens} in, ${tokens.output_tokens} out)` : '';
}

function renderTree() {
  const children = new Map();
  for (const s of sessions.values()) {
    const key = s.parent !== null && sessions.has(s.parent) ? s.parent : null;
    if (!children.has(key)) children.set(key, []);
    children.get(key).push(s);
  }
  const branch = (key) => {
    const list = el('ul', { role: key === null ? 'presentation' : 'group' });
    for (const s of children.get(key) ?? []) {
      const state = stateOf(s);
      const node = el(
        'button',
        { class: 'node', type: 'button', 'data-session': s.id, 'aria-current': String(s.id === selected), onclick: () => select(s.id) },
        el('span', { class: 'name' }, label(s)),
        badge(state),
        el('span', { class: 'meta' }, `on ${s.worker}`),
        el('span', { class: 'meta' }, tokensText(s.tokens)),
      );
      list.append(el('li', { role: 'treeitem', 'aria-label': `${label(s)}: ${state}` }, node, children.has(s.id) ? branch(s.id) : null));
    }
    return list;
  };
  const tree = $('tree');
  const focused = document.activeElement?.getAttribute('data-session');
  tree.replaceChildren(...branch(null).childNodes);
  if (focused) tree.querySelector(`[data-session="${CSS.escape(focused)}"]`)?.focus();
}

async function decide(s, callId, kind, decision) {
  const response = await fetch('approval', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ session_id: s.id, call_id: callId, kind, decision }),
  });
  if (!response.ok) alert(`the answer was refused: ${await response.text()}`);
}

function renderApprovals() {
  const items = [];
  for (const s of sessions.values()) {
    for (const [callId, { event, kind }] of s.pending) {
      const msg = event.msg;
      const body =
        kind === 'exec'
          ? el('pre', {}, `$ ${commandText(msg.command)}\n  in ${msg.cwd}`)
          : kind === 'tool'
            ? el('pre', {}, `${msg.tool}(${JSON.stringify(msg.arguments ?? {}, null, 2)})`)
            : el(
                'pre',
                {},
                Object.entries(msg.changes)
                  .map(([path, change]) => `${change.type} ${path}\n${change.unified_diff ?? change.content ?? ''}`)
                  .join('\n'),
              );
      const button = (decision, text, cls) =>
        el('button', { type: 'button', class: `decision ${cls}`, 'data-decision': decision, onclick: () => void decide(s, callId, kind, decision) }, text);
      items.push(
        el(
          'li',
          { class: 'approval', 'data-call': callId, 'data-session': s.id },
          el(
            'div',
            {},
            el('span', { class: 'name' }, label(s)),
            ' asks to ',
            kind === 'exec' ? 'run a command' : kind === 'tool' ? `call ${msg.tool}` : 'change files',
            msg.reason ? el('span', { class: 'meta' }, ` (${msg.reason})`) : null,
          ),
          body,
          el(
            'div',
            { class: 'actions' },
            button('approved', 'Approve', 'approve'),
            button('approved_for_session', 'Approve for the session', 'approve'),
            button('denied', 'Deny', 'deny'),
            button('abort', 'Deny and stop the turn', 'deny'),
          ),
        ),
      );
    }
  }
  const list = $('approvals');
  const focused = document.activeElement;
  const focusKey = focused?.closest?.('.approval') ? [focused.closest('.approval').getAttribute('data-call'), focused.getAttribute('data-decision')] : null;
  list.replaceChildren(...(items.length > 0 ? items : [el('li', { class: 'muted' }, 'none')]));
  if (focusKey) list.querySelector(`[data-call="${CSS.escape(focusKey[0])}"] [data-decision="${focusKey[1]}"]`)?.focus();
}

function renderDetail() {
  const detail = $('detail');
  const s = selected ? sessions.get(selected) : undefined;
  if (!s) return;
  $('detail-title').textContent = `${label(s)} · ${stateOf(s)}`;
  const calls = el('ul', { class: 'calls' });
  for (const [callId, call] of s.calls) calls.append(el('li', {}, badge(call.state), ' ', el('code', {}, callId), ' ', call.what));
  const history = el('ol', { class: 'history' });
  for (const event of s.history) {
    const text = summary(event.msg);
    history.append(el('li', {}, el('span', { class: 'type' }, event.msg.type), text.includes('\n') ? el('pre', {}, text) : text));
  }
  detail.replaceChildren(
    el('p', { class: 'meta' }, `${s.id} · worker ${s.worker} · ${s.model} · depth ${s.depth} · ${tokensText(s.tokens)}`),
    s.prompt ? el('p', {}, el('span', { class: 'meta' }, 'asked: '), s.prompt) : '',
    el('h2', {}, 'Tool calls of the current turn'),
    s.calls.size > 0 ? calls : el('p', { class: 'muted' }, 'none'),
    el('h2', {}, 'History'),
    history,
  );
}

function renderLog() {
  const filter = /** @type {HTMLInputElement} */ ($('filter')).value.trim().toLowerCase();
  const rows = [];
  for (let i = log.length - 1; i >= 0 && rows.length < 500; i--) {
    const event = log[i];
    const text = `${event.msg.type} ${event.session_id ?? ''} ${summary(event.msg)}`;
    if (filter && !text.toLowerCase().includes(filter)) continue;
    rows.push(
      el(
        'li',
        { title: text },
        el('span', { class: 'sid' }, (event.session_id ?? 'gateway').slice(0, 8)),
        el('span', { class: 'type' }, event.msg.type),
        summary(event.msg),
      ),
    );
  }
  $('log').replaceChildren(...rows);
}

function render() {
  scheduled = false;
  renderTree();
  renderApprovals();
  renderDetail();
  renderLog();
}

function schedule() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(render);
}

function select(id) {
  selected = id;
  render();
}

function moveSelection(step) {
  const nodes = [...document.querySelectorAll('#tree .node')];
  if (nodes.length === 0) return;
  const at = nodes.findIndex((node) => node.getAttribute('data-session') === selected);
  const next = nodes[Math.max(0, Math.min(nodes.length - 1, at + step))];
  select(next.getAttribute('data-session'));
  document.querySelector(`#tree [data-session="${CSS.escape(selected)}"]`)?.focus();
}

document.addEventListener('keydown', (e) => {
  if (e.target instanceof HTMLInputElement) {
    if (e.key === 'Escape') e.target.blur();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === '/') {
    e.preventDefault();
    $('filter').focus();
  } else if (e.key === 'j' || e.key === 'ArrowDown') {
    moveSelection(1);
  } else if (e.key === 'k' || e.key === 'ArrowUp') {
    moveSelection(-1);
  } else if (e.key === 'a' || e.key === 'd') {
    document.querySelector(`#approvals [data-decision="${e.key === 'a' ? 'approved' : 'denied'}"]`)?.click();
  }
});
$('filter').addEventListener('input', renderLog);

const stream = new EventSource('events');
stream.addEventListener('reset', () => {
  sessions = new Map();
  log = [];
  schedule();
});
stream.addEventListener('message', (e) => {
  apply(JSON.parse(e.data));
  schedule();
});
stream.addEventListener('open', () => {
  $('connection').textContent = 'live';
});
stream.addEventListener('error', () => {
  $('connection').textContent = 'reconnecting';
});
