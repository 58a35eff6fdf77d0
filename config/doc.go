// Package config is caisson's configuration file: its format (TOML, a
// version, one section per component), its defaults, and the checks of
// each section.
//
// A setting is resolved in layers, each overriding the one before:
//
//	Default() ─▶ the file (Load) ─▶ the environment ─▶ the flags the user set
//
// This package owns the first two and Validate, which every command runs on
// the result; the environment and the flags are the CLI's (cmd/caisson), which
// knows their names. Each section's Validate applies its component's own
// rules (cni, gpu/isolator, resources, containerizer, isolators/cgroups), so a
// value the component would refuse at use is refused before any work.
//
// The sections master, agent and client are the cluster's: the scheduler's
// server, the node daemon, and the commands that call the master's API.
// The section hooks holds the admin's hooks (package agenthook), as arrays
// of tables, which only the file sets.
//
// Only cmd/caisson imports this package: libraries take their own Config
// structs, which the CLI fills from the resolved configuration.
package config
