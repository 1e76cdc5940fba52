package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// WithTLS makes a standalone server speak TLS only: redis-server gets
// --port 0 and --tls-port on the server's port, with a certificate for
// 127.0.0.1 and localhost signed by a certificate authority generated for
// this server alone (in its directory, valid for a day). Clients are not
// asked for certificates (--tls-auth-clients no). URL then starts with
// rediss://, and Do, DoTimeout, Dial and the readiness checks speak TLS;
// clients trust the server with CAFile, CertPool or TLSConfig.
//
// StartCluster refuses WithTLS.
func WithTLS() Option { return func(c *config) { c.tls = true } }

// tlsFiles is the throwaway PKI of one TLS server.
type tlsFiles struct {
	caFile   string
	certFile string
	keyFile  string
	pool     *x509.CertPool
}

// tlsValidity is how long the generated certificates are valid; they are
// backdated by an hour against clock differences.
const tlsValidity = 24 * time.Hour

// writeTLSFiles generates a CA and a server certificate for the loopback
// addresses and writes ca.pem, server.pem and server-key.pem into dir.
func writeTLSFiles(dir string) (*tlsFiles, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("redistest: CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(tlsValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("redistest: CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("redistest: CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("redistest: server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(tlsValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// ClientAuth too: Redis presents the same certificate when it
		// connects to other servers (replication).
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:    []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("redistest: server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("redistest: server key: %w", err)
	}

	f := &tlsFiles{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "server.pem"),
		keyFile:  filepath.Join(dir, "server-key.pem"),
		pool:     x509.NewCertPool(),
	}
	f.pool.AddCert(caCert)
	for _, w := range []struct {
		path, typ string
		der       []byte
		mode      os.FileMode
	}{
		{f.caFile, "CERTIFICATE", caDER, 0o644},
		{f.certFile, "CERTIFICATE", der, 0o644},
		{f.keyFile, "PRIVATE KEY", keyDER, 0o600},
	} {
		b := pem.EncodeToMemory(&pem.Block{Type: w.typ, Bytes: w.der})
		if err := os.WriteFile(w.path, b, w.mode); err != nil {
			return nil, fmt.Errorf("redistest: %w", err)
		}
	}
	return f, nil
}

// tlsArgs are the redis-server arguments serving TLS on port and nothing
// else.
func (f *tlsFiles) args(port string) []string {
	return []string{
		"--port", "0",
		"--tls-port", port,
		"--tls-cert-file", f.certFile,
		"--tls-key-file", f.keyFile,
		"--tls-ca-cert-file", f.caFile,
		"--tls-auth-clients", "no",
	}
}

// clientConfig returns a client configuration trusting the CA, for
// 127.0.0.1.
func (f *tlsFiles) clientConfig() *tls.Config {
	if f == nil {
		return nil
	}
	return &tls.Config{RootCAs: f.pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// TLS reports whether the server was started WithTLS.
func (s *Server) TLS() bool { return s.tls != nil }

// CAFile returns the path of the PEM certificate of the authority that
// signed the server's certificate, or "" without WithTLS.
func (s *Server) CAFile() string {
	if s.tls == nil {
		return ""
	}
	return s.tls.caFile
}

// CertPool returns a pool holding the server's certificate authority, for
// tls.Config.RootCAs, or nil without WithTLS.
func (s *Server) CertPool() *x509.CertPool {
	if s.tls == nil {
		return nil
	}
	return s.tls.pool
}

// TLSConfig returns a new client configuration that trusts the server's
// certificate authority, with ServerName 127.0.0.1, or nil without WithTLS.
// It also works through a Proxy, which forwards the TLS bytes untouched.
func (s *Server) TLSConfig() *tls.Config { return s.tls.clientConfig() }

// DialTLS is Dial over TLS with config cfg; the handshake is done within
// timeout.
func DialTLS(addr string, timeout time.Duration, cfg *tls.Config) (*Conn, error) {
	return dial(addr, timeout, cfg)
}
