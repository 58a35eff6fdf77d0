package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/caisson/caisson/internal/pki"
)

// TestClusterPaths: the TLS files and the agent's token file left empty
// are their places under the state dir; those set are kept.
func TestClusterPaths(t *testing.T) {
	m := DefaultMaster()
	m.StateDir = "/srv/master"
	if diff := cmp.Diff(pki.Files{CA: "/srv/master/pki/ca.pem", Cert: "/srv/master/pki/master.pem", Key: "/srv/master/pki/master-key.pem"}, m.TLSFiles()); diff != "" {
		t.Errorf("master defaults (-want +got):\n%s", diff)
	}
	m.TLSCA, m.TLSKey = "/etc/ca.pem", "/etc/key.pem"
	if diff := cmp.Diff(pki.Files{CA: "/etc/ca.pem", Cert: "/srv/master/pki/master.pem", Key: "/etc/key.pem"}, m.TLSFiles()); diff != "" {
		t.Errorf("master set (-want +got):\n%s", diff)
	}

	a := DefaultAgent()
	a.StateDir = "/srv/agent"
	if diff := cmp.Diff(pki.Files{CA: "/srv/agent/pki/ca.pem", Cert: "/srv/agent/pki/agent.pem", Key: "/srv/agent/pki/agent-key.pem"}, a.TLSFiles()); diff != "" {
		t.Errorf("agent defaults (-want +got):\n%s", diff)
	}
	if got := a.TokenPath(); got != "/srv/agent/token" {
		t.Errorf("agent token %s, want /srv/agent/token", got)
	}
	a.TLSCert, a.TokenFile = "/etc/agent.pem", "/etc/agent.token"
	if got := a.TLSFiles().Cert; got != "/etc/agent.pem" {
		t.Errorf("agent cert %s, want /etc/agent.pem", got)
	}
	if got := a.TokenPath(); got != "/etc/agent.token" {
		t.Errorf("agent token %s, want /etc/agent.token", got)
	}
}

func TestAgentLabelMap(t *testing.T) {
	a := Agent{Labels: []string{"zone=a", "rack=12", "note=x=y", "empty="}}
	want := map[string]string{"zone": "a", "rack": "12", "note": "x=y", "empty": ""}
	if diff := cmp.Diff(want, a.LabelMap()); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
}
