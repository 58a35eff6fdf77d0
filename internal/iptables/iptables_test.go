package iptables

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSplitRule(t *testing.T) {
	got := SplitRule(`-A POSTROUTING -s 10.1.2.3/32 -m comment --comment "name: \"t8\" id: \"c23e\"" -j CNI-38cb`)
	want := []string{"-A", "POSTROUTING", "-s", "10.1.2.3/32", "-m", "comment", "--comment", `name: "t8" id: "c23e"`, "-j", "CNI-38cb"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	r := Rule{Args: got}
	if r.Chain() != "POSTROUTING" || r.Target() != "CNI-38cb" {
		t.Errorf("chain %q target %q", r.Chain(), r.Target())
	}
}
