// Package pki makes and loads a Caisson cluster's TLS material: its own
// certificate authority, the master's certificate and the agents'. The
// master and the agents authenticate each other with these (mutual TLS);
// tenants' clients verify the master against the CA.
//
// A directory made by Init holds, each written atomically with mode 0600
// for keys and 0644 for certificates:
//
//	ca.pem ca-key.pem          the cluster's CA (ECDSA P-256, ten years)
//	master.pem master-key.pem  the master: server and client use
//	agent.pem agent-key.pem    an agent: client and server use
//
// Issue signs further certificates with the CA, one per agent host.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/caisson/caisson/api"
	"github.com/caisson/caisson/internal/atomicfile"
)

// Names of the files Init writes in its directory.
const (
	CAFile        = "ca.pem"
	CAKeyFile     = "ca-key.pem"
	MasterFile    = "master.pem"
	MasterKeyFile = "master-key.pem"
	AgentFile     = "agent.pem"
	AgentKeyFile  = "agent-key.pem"
)

// Common names, and the organisational unit that says a certificate's
// role in the cluster.
const (
	RoleMaster = "master"
	RoleAgent  = "agent"
)

// validity of the certificates Init and Issue make.
const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 2 * 365 * 24 * time.Hour
)

// Init makes a CA, a master certificate valid for hosts (names or IP
// addresses; localhost and 127.0.0.1 are always added) and an agent
// certificate in dir. It makes nothing and returns nil when dir already
// holds a CA: the cluster keeps its identity across restarts.
func Init(dir string, hosts []string) error {
	if _, err := os.Stat(filepath.Join(dir, CAFile)); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: ca key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "caisson cluster CA", Organization: []string{"caisson"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("pki: ca: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("pki: ca: %w", err)
	}
	// The leaves first: a CA file appears only when everything it signs
	// is written, so a crash half way makes Init start over.
	if err := issue(dir, ca, caKey, RoleMaster, MasterFile, MasterKeyFile, hosts); err != nil {
		return err
	}
	if err := issue(dir, ca, caKey, RoleAgent, AgentFile, AgentKeyFile, hosts); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, CAKeyFile), caKey); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, CAFile), "CERTIFICATE", der, 0o644)
}

// Issue signs a certificate for role (RoleMaster or RoleAgent) with the CA
// in caDir, valid for hosts, and writes it to certFile and keyFile.
func Issue(caDir, role, certFile, keyFile string, hosts []string) error {
	if role != RoleMaster && role != RoleAgent {
		return fmt.Errorf("pki: role %q: want %s or %s: %w", role, RoleMaster, RoleAgent, api.ErrInvalid)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(caDir, CAFile), filepath.Join(caDir, CAKeyFile))
	if err != nil {
		return fmt.Errorf("pki: load the CA: %w", err)
	}
	ca, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("pki: load the CA: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("pki: the CA key is not ECDSA: %w", api.ErrInvalid)
	}
	return issue("", ca, key, role, certFile, keyFile, hosts)
}

func issue(dir string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, role, certFile, keyFile string, hosts []string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: %s key: %w", role, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "caisson " + role, Organization: []string{"caisson"}, OrganizationalUnit: []string{role}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range append([]string{"localhost", "127.0.0.1", "::1"}, hosts...) {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("pki: %s certificate: %w", role, err)
	}
	if err := writeKey(filepath.Join(dir, keyFile), key); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, certFile), "CERTIFICATE", der, 0o644)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, perm os.FileMode) error {
	if err := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), perm, true); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

// Files name a component's TLS material.
type Files struct {
	CA   string // the cluster's CA certificate
	Cert string // this component's certificate
	Key  string // its key
}

// Check says which file is missing or unreadable, naming it.
func (f Files) Check() error {
	for _, p := range []string{f.CA, f.Cert, f.Key} {
		if p == "" {
			return fmt.Errorf("pki: the CA, certificate and key files must all be set: %w", api.ErrInvalid)
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("pki: %w", err)
		}
	}
	return nil
}

func (f Files) load() (*x509.CertPool, tls.Certificate, error) {
	if err := f.Check(); err != nil {
		return nil, tls.Certificate{}, err
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("pki: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, tls.Certificate{}, fmt.Errorf("pki: %s holds no PEM certificate: %w", f.CA, api.ErrInvalid)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("pki: %s, %s: %w", f.Cert, f.Key, err)
	}
	return pool, pair, nil
}

// ServerConfig is the TLS configuration of a server (the master, or an
// agent's own API): TLS 1.3, its certificate, and client certificates of
// the cluster's CA verified when a client presents one. A handler that
// needs one (the agent endpoints) checks PeerRole.
func (f Files) ServerConfig() (*tls.Config, error) {
	pool, pair, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
	}, nil
}

// ClientConfig is the TLS configuration of a client of the cluster: the
// server is verified against the cluster's CA, and the client presents
// its certificate. Cert and Key may be empty for a tenant's client, which
// authenticates with its token only.
func (f Files) ClientConfig() (*tls.Config, error) {
	if f.CA == "" {
		return nil, fmt.Errorf("pki: the CA file must be set: %w", api.ErrInvalid)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("pki: %s holds no PEM certificate: %w", f.CA, api.ErrInvalid)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}
	if f.Cert != "" || f.Key != "" {
		pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("pki: %s, %s: %w", f.Cert, f.Key, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// ErrNoClientCert is a request without a verified client certificate of
// the cluster where one is needed.
var ErrNoClientCert = errors.New("pki: no verified client certificate of the cluster")

// PeerRole is the role (RoleMaster or RoleAgent) in the verified client
// certificate of a connection, or ErrNoClientCert.
func PeerRole(cs *tls.ConnectionState) (string, error) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", ErrNoClientCert
	}
	ou := cs.VerifiedChains[0][0].Subject.OrganizationalUnit
	if len(ou) != 1 || (ou[0] != RoleMaster && ou[0] != RoleAgent) {
		return "", ErrNoClientCert
	}
	return ou[0], nil
}
