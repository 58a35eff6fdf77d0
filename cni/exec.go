package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
)

// pluginExec runs plugin binaries as libcni's default does, with two
// additions that keep a chain's DEL complete when its ADD never finished
// (caisson was killed, or a later plugin failed): libcni writes its cache,
// the prevResult of every DEL, only once the whole chain is added, and a
// DEL without a prevResult leaves what a plugin keyed by address (the
// firewall plugin's CNI-FORWARD rules name only the container's IP).
//
//   - In an ADD, before a plugin that gets a prevResult runs, that result
//     goes to the recorder of the call's context (see withRecorder): the
//     checkpoint has the addresses before anything names them.
//   - A DEL without a prevResult gets the kept result of the call's
//     context (see withPrevResult).
type pluginExec struct {
	*invoke.DefaultExec
}

var _ invoke.Exec = (*pluginExec)(nil)

func newPluginExec() *pluginExec {
	return &pluginExec{DefaultExec: &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}}}
}

type recorderKey struct{}

type prevResultKey struct{}

// withRecorder makes each prevResult an ADD passes to a plugin go to
// record first; a plugin does not run unless record succeeds.
func withRecorder(ctx context.Context, record func(prevResult []byte) error) context.Context {
	return context.WithValue(ctx, recorderKey{}, record)
}

// withPrevResult makes the DELs of the call get prevResult (already in the
// network's version) when libcni has none to give.
func withPrevResult(ctx context.Context, prevResult []byte) context.Context {
	return context.WithValue(ctx, prevResultKey{}, prevResult)
}

// ExecPlugin implements invoke.Exec.
func (e *pluginExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	switch command(environ) {
	case "ADD":
		if record, ok := ctx.Value(recorderKey{}).(func([]byte) error); ok {
			var conf struct {
				PrevResult json.RawMessage `json:"prevResult"`
			}
			if err := json.Unmarshal(stdin, &conf); err == nil && len(conf.PrevResult) > 0 && string(conf.PrevResult) != "null" {
				if err := record(conf.PrevResult); err != nil {
					return nil, fmt.Errorf("record the result before %s: %w", pluginPath, err)
				}
			}
		}
	case "DEL":
		if prev, ok := ctx.Value(prevResultKey{}).([]byte); ok && len(prev) > 0 {
			var conf map[string]json.RawMessage
			if err := json.Unmarshal(stdin, &conf); err == nil && conf["prevResult"] == nil {
				conf["prevResult"] = prev
				if data, err := json.Marshal(conf); err == nil {
					stdin = data
				}
			}
		}
	}
	return e.DefaultExec.ExecPlugin(ctx, pluginPath, stdin, environ)
}

// command returns the CNI_COMMAND of a plugin's environment.
func command(environ []string) string {
	cmd := ""
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "CNI_COMMAND="); ok {
			cmd = v
		}
	}
	return cmd
}

// currentResult converts a result of any version to the current one's
// JSON.
func currentResult(raw []byte) ([]byte, error) {
	r, err := create.CreateFromBytes(raw)
	if err != nil {
		return nil, err
	}
	cur, err := types100.NewResultFromResult(r)
	if err != nil {
		return nil, err
	}
	return json.Marshal(cur)
}

// resultAsVersion converts a kept result (current version) to a network's.
func resultAsVersion(raw []byte, cniVersion string) ([]byte, error) {
	var r types100.Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	if r.CNIVersion == "" {
		r.CNIVersion = types100.ImplementedSpecVersion
	}
	v, err := r.GetAsVersion(cniVersion)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}
