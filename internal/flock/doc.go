// Package flock takes advisory locks on files and directories (flock(2)). A
// lock is released by Unlock or when the process dies, so a crash never
// leaves one held.
//
// A wait for a lock that another process holds may last as long as that
// process's work (a runtime or a plugin call, a minute or more): callers
// that must stay cancellable (every command a user can interrupt) wait
// with the Context functions, which give up when their context is done.
package flock
