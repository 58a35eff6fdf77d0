// Package agenthook runs the admin's hooks around containers' lives and
// the agent's: exec hooks and OCI hooks, from the [hooks] section of the
// config file. caisson run and the agent's launches use the same hooks,
// through the containerizer (containerizer.Hook); the agent also runs the
// agent-start and agent-register hooks.
//
//	agent start ─▶ agent-start hooks
//	each registration (and each change of the resources a heartbeat
//	reports) ─▶ agent-register hooks: labels to add, resources to report
//	launch: isolators Prepare ─▶ merge ─▶ the OCI hooks added to the spec
//	  ─▶ pre-launch hooks (env, labels, annotations, mounts, or a veto)
//	  ─▶ runtime create and start ─▶ post-launch hooks
//	  … exit ─▶ cleanup ─▶ post-stop hooks (exit status, reason, usage)
//
// An exec hook reads a Request as JSON on its standard input and may
// write an answer as one JSON object on its standard output: a
// LaunchAnswer at pre-launch, a RegisterAnswer at agent-register; other
// points read none. Its environment holds PATH, CAISSON_HOOK_POINT,
// CAISSON_HOOK_NAME and the variables its configuration adds. Each hook
// has a timeout, a failure policy (PolicyFail or PolicyIgnore) and a
// bound on its output; a hook that fails (exit status, timeout, output
// too long or not its point's answer) is named in the error. Each run is
// its own process group and, where the host has a cgroup v2 hierarchy,
// its own cgroup: when the hook exits or times out, everything it started
// is killed, however it detached itself.
//
// Hooks of one point run in the order of the configuration; each sees
// what those before it changed.
package agenthook
