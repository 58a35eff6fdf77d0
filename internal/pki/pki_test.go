package pki

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// TestMutualTLS makes a cluster's material and checks that an agent's
// client certificate is verified and named by PeerRole, that a client
// without one is let in but has no role, and that a certificate of another
// CA is refused.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	if err := Init(dir, []string{"master.example"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CAKeyFile, MasterKeyFile, AgentKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", f, err, fi.Mode().Perm())
		}
	}
	caBefore, _ := os.ReadFile(filepath.Join(dir, CAFile))
	if err := Init(dir, nil); err != nil {
		t.Fatal(err)
	}
	if caAfter, _ := os.ReadFile(filepath.Join(dir, CAFile)); !bytes.Equal(caBefore, caAfter) {
		t.Fatal("a second Init replaced the CA")
	}

	master := Files{CA: filepath.Join(dir, CAFile), Cert: filepath.Join(dir, MasterFile), Key: filepath.Join(dir, MasterKeyFile)}
	srvCfg, err := master.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role, err := PeerRole(r.TLS)
		if err != nil {
			role = "none"
		}
		_, _ = io.WriteString(w, role)
	}))
	srv.TLS = srvCfg
	srv.StartTLS()
	t.Cleanup(srv.Close)

	get := func(cfg *tls.Config) (string, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(srv.URL)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	agentCfg, err := Files{CA: master.CA, Cert: filepath.Join(dir, AgentFile), Key: filepath.Join(dir, AgentKeyFile)}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := get(agentCfg); err != nil || got != RoleAgent {
		t.Errorf("agent client: %q, %v; want %q", got, err, RoleAgent)
	}
	tenantCfg, err := Files{CA: master.CA}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := get(tenantCfg); err != nil || got != "none" {
		t.Errorf("tenant client: %q, %v; want none", got, err)
	}

	// Another cluster's agent certificate is refused in the handshake.
	other := t.TempDir()
	if err := Init(other, nil); err != nil {
		t.Fatal(err)
	}
	foreign, err := Files{CA: master.CA, Cert: filepath.Join(other, AgentFile), Key: filepath.Join(other, AgentKeyFile)}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get(foreign); err == nil {
		t.Error("a certificate of another CA was accepted")
	}
	// And a client that trusts another CA refuses the master.
	if _, err := get(mustClient(t, Files{CA: filepath.Join(other, CAFile)})); err == nil {
		t.Error("the master was trusted by a client of another CA")
	}

	// Issue signs a new agent's certificate with the same CA.
	cert, key := filepath.Join(t.TempDir(), "a.pem"), filepath.Join(t.TempDir(), "a-key.pem")
	if err := Issue(dir, RoleAgent, cert, key, []string{"node2"}); err != nil {
		t.Fatal(err)
	}
	if got, err := get(mustClient(t, Files{CA: master.CA, Cert: cert, Key: key})); err != nil || got != RoleAgent {
		t.Errorf("issued agent: %q, %v", got, err)
	}
}

func mustClient(t *testing.T, f Files) *tls.Config {
	t.Helper()
	cfg, err := f.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestBadInput(t *testing.T) {
	if err := Issue(t.TempDir(), "boss", "c", "k", nil); err == nil {
		t.Error("Issue took an unknown role")
	}
	if _, err := (Files{}).ServerConfig(); err == nil {
		t.Error("ServerConfig took no files")
	}
	if _, err := PeerRole(nil); !errors.Is(err, ErrNoClientCert) {
		t.Errorf("PeerRole(nil) = %v", err)
	}
}
