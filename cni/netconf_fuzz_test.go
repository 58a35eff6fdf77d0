package cni

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// confSeeds are configuration files, good and bad, in both forms.
var confSeeds = []string{
	`{"cniVersion":"1.0.0","name":"a","dns":{"nameservers":["10.0.0.53"]},"plugins":[{"type":"bridge","bridge":"br-a","ipam":{"type":"host-local","ranges":[[{"subnet":"10.1.0.0/24"}]]}},{"type":"portmap","capabilities":{"portMappings":true}}]}`,
	`{"cniVersion":"0.4.0","name":"single","type":"macvlan","ipam":{"type":"host-local","subnet":"10.2.0.0/24"}}`,
	`{"cniVersion":"1.1.0","name":"agg","plugins":[{"type":"bridge"},{"type":"bandwidth","capabilities":{"bandwidth":true,"portMappings":false}}]}`,
	`{"cniVersion":"1.0.0","name":"notype","plugins":[{"bridge":"x"}]}`,
	`{"cniVersion":"1.0.0","name":"empty","plugins":[]}`,
	`{"name":`,
	`{"cniVersion":"1.0.0","name":"","plugins":[{"type":"ptp"}]}`,
	`{"cniVersion":"1.0.0","name":"d","dns":7,"plugins":[{"type":"ptp"}]}`,
}

// checkNetwork checks what the parser made of data: plugins each with a
// type, capabilities sorted and once each; and its kept
// configuration (what a checkpoint stores for the DEL) parses back to the
// same network.
func checkNetwork(t *testing.T, data []byte, n *Network) {
	t.Helper()
	switch {
	case slices.Contains(n.Plugins, ""):
		t.Fatalf("%q: a plugin without a type: %q", data, n.Plugins)
	case !slices.IsSorted(n.Capabilities) || len(slices.Compact(slices.Clone(n.Capabilities))) != len(n.Capabilities):
		t.Fatalf("%q: capabilities %q not sorted and unique", data, n.Capabilities)
	}
	kept, err := networkFromBytes(n.Config)
	if err != nil {
		t.Fatalf("%q parses, its kept configuration %q does not: %v", data, n.Config, err)
	}
	opts := cmp.Options{cmpopts.IgnoreUnexported(Network{}), cmpopts.IgnoreFields(Network{}, "File"), cmpopts.EquateEmpty()}
	if diff := cmp.Diff(n, kept, opts); diff != "" {
		t.Fatalf("%q: the kept configuration parses to another network (-first +kept):\n%s", data, diff)
	}
}

// FuzzNetworkFromBytes parses arbitrary bytes as a kept configuration
// (a checkpoint's, or the libcni cache's).
func FuzzNetworkFromBytes(f *testing.F) {
	for _, s := range confSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := networkFromBytes(data)
		if err != nil {
			return
		}
		checkNetwork(t, data, n)
	})
}

// FuzzLoadFile parses arbitrary bytes as a file of the config dir, a
// .conflist or a single plugin's .conf.
func FuzzLoadFile(f *testing.F) {
	for _, s := range confSeeds {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, list bool) {
		name := "10-fuzz.conf"
		if list {
			name += "list"
		}
		// Alone in a dir of its own each time: a list may take plugins
		// from the dir, and an input the fuzzing engine interrupts must
		// not leave its file to the next.
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		n, err := loadFile(path)
		if err != nil {
			return
		}
		// A kept configuration may list no plugin (libcni allows it, and
		// its DEL does nothing); a network of the config dir has some, and
		// a name.
		if n.Name == "" || len(n.Plugins) == 0 || n.File != path {
			t.Fatalf("%q: name %q, %d plugins, file %q", data, n.Name, len(n.Plugins), n.File)
		}
		checkNetwork(t, data, n)
	})
}
