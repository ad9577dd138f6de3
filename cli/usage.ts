/**
 * What `troupe --help` and `troupe <command> --help` print. Kept apart from the commands, which
 * are loaded only when they run, so asking for help loads none of them.
 */

const MODEL = `Model:
  --model M                 the model (default: TROUPE_MODEL, then the config file, then the built-in default)
  --wire-api responses|chat the provider's wire API (default: TROUPE_WIRE_API, then the config file, then responses)`;

const PROFILE = `  --profile NAME            take defaults from profile NAME of TROUPE_HOME/config.json (default:
                            TROUPE_PROFILE); flags > environment > profile > config file > built-in`;

const NATS = `NATS (sessions run on workers; default: the TROUPE_NATS_* environment):
  --nats URL                the broker, nats://host:port (TROUPE_NATS_URL)
  --nats-creds FILE         a credentials file
  --nats-nkey FILE          an nkey seed file
  --nats-tls-ca FILE        CA certificate for TLS
  --nats-tls-cert FILE      client certificate for TLS
  --nats-tls-key FILE       client key for TLS
  --namespace NAME          the subject namespace (default: default)`;

const INSPECT = `  --inspect[=PORT]          serve a live page of the session tree on 127.0.0.1 (any free port
                            by default); its address, with its access token, goes to stderr`;

const TURN_OPTIONS = `  --json                    print every event as a protocol line on stdout
${INSPECT}; approvals are then answered on the page
  --approval-policy P       untrusted | on-failure | on-request | never (exec: the config file's, else on-request)
  --sandbox S               read-only | workspace-write | danger-full-access (exec: the config file's, else workspace-write)
  -C, --cd DIR              the session's working directory (default: the current one)
${PROFILE}
  --tools [NAME=]FILE       tools written with tool() in an ES module, a tool set named after the file;
                            repeatable (on NATS the workers load the module, and the session names the set)`;

/** Each command's usage, printed by `troupe <command> --help`. */
export const COMMAND_USAGE = {
  'app-server': `Usage: troupe app-server [options]

Serve the JSON-lines protocol (docs/PROTOCOL.md) on stdin and stdout: one submission a line
in, one event a line out. End of stdin shuts every session down and exits. With --nats this
process is a gateway and the sessions run on workers.

Options:
  --tools [NAME=]FILE       load the tools an ES module exports (tool() from troupe) as tool set NAME
                            (default: the file's name), for sessions that name it in tool_sets; repeatable
${PROFILE}
                            (what a new_session leaves out; not with --nats: the workers' applies)
${INSPECT}

${MODEL}

${NATS}
`,
  exec: `Usage: troupe exec [options] [PROMPT | -]
       troupe exec [options] resume (SESSION_ID | --last) [PROMPT | -]

Run one turn in a new session (or, after "resume", in an earlier one) and print what happens:
a transcript on stderr and the final message on stdout, or every event as a JSON line with
--json. The prompt is read from stdin when it is "-", or when none is given and stdin is not a
terminal. Exits 0 when the turn completed, 1 when it failed, 2 on bad arguments.

Options:
${TURN_OPTIONS}
  --last                    with resume: the newest top-level session whose directory is this one

Codex compatibility (the flags the Codex SDK passes; README, Codex SDK):
  --experimental-json       print Codex's exec events (thread.started, item.*, turn.*) as JSON lines
  --output-schema FILE      a JSON Schema file the final answer must match (sent to the model)
  -i, --image FILE[,FILE]   attach images to the prompt (repeatable)
  --add-dir DIR             another directory the sandbox lets commands write (repeatable)
  -c, --config KEY=VALUE    approval_policy, sandbox_mode, model, model_reasoning_effort,
                            sandbox_workspace_write.network_access, sandbox_workspace_write.writable_roots,
                            openai_base_url, web_search (only "disabled"); values as in TOML
  --skip-git-repo-check     accepted; troupe never requires a git repository
  --thread-source NAME      accepted and ignored

${MODEL}

${NATS}
`,
  resume: `Usage: troupe resume [options] (SESSION_ID | --last) [PROMPT | -]

Take a session up again from its rollout and run one more turn in it, printed as troupe exec
prints. --last picks the newest session started in this directory (or -C DIR). The flags given
override what the session was created with; the rest stays as it was.

Options:
  --last                    the newest top-level session whose directory is this one
${TURN_OPTIONS}

${MODEL}

${NATS}
`,
  review: `Usage: troupe review [options] [--uncommitted | --base BRANCH | --commit SHA | INSTRUCTIONS]

Review changes in a new session, in a review thread that sees none of any other session's work;
the findings go to stdout. Without a target it reviews the uncommitted changes. Runs read-only
and never asks, unless --sandbox or --approval-policy say otherwise.

Options:
  --uncommitted             the working tree's changes against HEAD (the default)
  --base BRANCH             the changes since the merge base with BRANCH
  --commit SHA              the changes one commit made
${TURN_OPTIONS}

${MODEL}

${NATS}
`,
  sessions: `Usage: troupe sessions [--all] [--json]

List the sessions whose rollouts troupe can see (under TROUPE_HOME, or the workers' with
--nats), newest first: id, start time, directory and the start of the first prompt.

Options:
  --all                     include sub-agents and review threads
  --json                    one JSON object a line, as the session_list event carries them

${NATS}
`,
  jobs: `Usage: troupe jobs run --csv FILE --instruction TEXT [options]
       troupe jobs status [JOB_ID] [--json] [--write-output] [--nats URL]
       troupe jobs cancel JOB_ID [--nats URL]

Agent jobs without a parent agent. run: one sub-agent per row of FILE (a CSV with a header row,
or JSON Lines when it ends in .jsonl), each given TEXT with the row's values in its {column}
placeholders; a progress bar on stderr, the summary as a JSON line on stdout. Exits 0 when every
item completed, 1 when some failed or the job was cancelled (Ctrl-C cancels it), 2 on bad
arguments or input. status: the jobs under TROUPE_HOME, newest first, or one in full. cancel:
stop a job (in this or another process); its output is written with what was done.

With --nats (or TROUPE_NATS_URL) the job runs on the workers and its records live in
JetStream: it goes on if this process dies, and status and cancel find it from any machine.
run writes the output on this machine when the job ends; status JOB_ID --write-output writes
an ended job's output here from its records.

Options of run:
  --concurrency N           items at once (default 16, at most 64)
  --output FILE             where the results go (CSV, or JSON Lines for .jsonl; default next to the input)
  --id-column C             the column naming the items (default row-1, row-2, …)
  --output-schema FILE      a JSON Schema file every result must match
  --max-runtime-seconds N   most seconds one item may run (default 1800)
  --max-attempts N          attempts of an item whose agent errors (default 3)
  --agent-type ROLE         the role of every item's agent (built in: default, explorer, worker; more in TROUPE_HOME/config.json)
  --json                    print the job session's events as JSON lines before the summary
  --approval-policy P       untrusted | on-failure | on-request | never (default never)
  --sandbox S               read-only | workspace-write | danger-full-access (default workspace-write)
  -C, --cd DIR              the agents' working directory; relative paths start here
${PROFILE}

${MODEL}

${NATS}
`,
  worker: `Usage: troupe worker --nats URL [options]

Host sessions for the gateways on NATS. SIGTERM or SIGINT drains: the worker stops taking
sessions, lets running tasks finish, hands its sessions to the other workers and exits 0.

Options:
  --worker-id ID            this worker's name (default: TROUPE_WORKER_ID, then host and pid)
  --capacity N              how many sessions it runs at once (default: TROUPE_WORKER_CAPACITY, then 8)
  --ready-file PATH         a file that exists while the worker takes sessions (readiness probes)
  --tools [NAME=]FILE       load the tools an ES module exports (tool() from troupe) as tool set NAME
                            (default: the file's name); sessions that name it in tool_sets get them;
                            repeatable
${PROFILE}
${INSPECT} (every session of the namespace)

${MODEL}

${NATS}
`,
  inspect: `Usage: troupe inspect --nats URL [--port N]

Serve a live page of every session of a NATS namespace on 127.0.0.1: the tree of sessions and
sub-agents with the worker each runs on, their states, tool calls, token usage and events, and
their pending approvals, which can be answered there. The address, with its access token, goes
to stderr. Runs until SIGINT or SIGTERM; it starts and stops no session.

Options:
  --port N                  the port (default: any free one)

${NATS}
`,
  'mcp-server': `Usage: troupe mcp-server [options]

Serve troupe as an MCP server on stdin and stdout, with two tools: troupe (start a session and
run a turn) and troupe-reply (run another turn in it).

Options:
${PROFILE}

${MODEL}
`,
  demo: `Usage: troupe demo [options]

Run a small real task in a temporary workspace: three sub-agents find and fix a bug with real
tools, one asks for approval, and a review thread checks the fix. Without OPENAI_API_KEY a
scripted model plays the agents.

Options:
  --keep                    keep the temporary workspace and print where it is

${MODEL}
`,
  config: `Usage: troupe config [--profile NAME] [--json]

Print the settings a new session of this machine starts with, each with where it came from:
a flag, the environment, a profile, TROUPE_HOME/config.json, or the built-in default. A config
file with an unknown key or a bad value, or an unknown profile, exits 2 naming the key.

Options:
${PROFILE}
  --json                    one JSON object: the file, the profile, and each setting's value and source

${MODEL}
`,
  schema: `Usage: troupe schema

Print the JSON Schema of the wire protocol.
`,
} as const;

export type CommandName = keyof typeof COMMAND_USAGE;

export function isCommand(name: string | undefined): name is CommandName {
  return name !== undefined && Object.hasOwn(COMMAND_USAGE, name);
}

export const USAGE = `troupe: an actor-model runtime for coding agents

Usage:
  troupe app-server [options]       serve the JSON-lines protocol on stdin/stdout
  troupe exec [options] PROMPT      run one turn and print what happens
  troupe resume (ID | --last) PROMPT run one more turn in an earlier session
  troupe review [--base BRANCH]     review changes in an isolated review thread
  troupe sessions                   list earlier sessions, newest first
  troupe jobs run --csv FILE ...    one sub-agent per row of a file (also: jobs status, jobs cancel)
  troupe worker --nats URL          host sessions for gateways on NATS
  troupe inspect --nats URL         a live page of every session on NATS
  troupe mcp-server [options]       serve troupe as an MCP server on stdin/stdout
  troupe demo [--keep]              run a small real task in a temporary workspace
  troupe config [--profile NAME]    print the effective settings and where each came from
  troupe schema                     print the JSON Schema of the wire protocol
  troupe --version

Run "troupe <command> --help" for a command's options.

Defaults live in TROUPE_HOME/config.json (troupe config shows them). Environment: OPENAI_API_KEY,
OPENAI_BASE_URL, TROUPE_MODEL, TROUPE_WIRE_API, TROUPE_PROFILE, TROUPE_HOME, TROUPE_LOG,
TROUPE_NATS_URL and the other TROUPE_NATS_* settings, TROUPE_SHUTDOWN_TIMEOUT_MS (README, Deployment).
`;
