// Package yamlnode holds what the readers of hand-written YAML files share
// (scheduler/scenario's scenarios, the CLI's session files and consumer
// trees): naming a node's value in an error, and finding where the
// decoder says a syntax error is. Each reader walks the yaml.Node tree
// itself, strictly, and makes its own errors.
package yamlnode
