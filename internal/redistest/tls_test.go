package redistest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestTLS(t *testing.T) {
	t.Parallel()
	s := StartStandalone(t, WithTLS(), WithPassword("tlspw"), WithAOF())
	if !s.TLS() {
		t.Fatal("TLS() = false")
	}
	if want := "rediss://:tlspw@" + s.Addr() + "/0"; s.URL() != want {
		t.Fatalf("URL = %q, want %q", s.URL(), want)
	}
	if v := mustDo(t, s.Do, "SET", "k", "over tls"); v != "OK" {
		t.Fatalf("SET = %#v", v)
	}

	// The CA file is a PEM certificate that verifies the server.
	pemBytes, err := os.ReadFile(s.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("CA file holds no certificate: %q", pemBytes)
	}
	for name, cfg := range map[string]*tls.Config{
		"CAFile":    {RootCAs: pool, ServerName: "127.0.0.1"},
		"CertPool":  {RootCAs: s.CertPool(), ServerName: "localhost"},
		"TLSConfig": s.TLSConfig(),
	} {
		c, err := DialTLS(s.Addr(), time.Second, cfg)
		if err != nil {
			t.Fatalf("%s: DialTLS: %v", name, err)
		}
		c.SetDeadline(time.Now().Add(DefaultDoTimeout))
		if _, err := c.Do("AUTH", "tlspw"); err != nil {
			t.Fatalf("%s: AUTH: %v", name, err)
		}
		if v, err := c.Do("GET", "k"); err != nil || v != "over tls" {
			t.Fatalf("%s: GET = %#v, %v", name, v, err)
		}
		c.Close()
	}

	// Unknown authority: the handshake fails.
	_, err = DialTLS(s.Addr(), time.Second, &tls.Config{ServerName: "127.0.0.1"})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("DialTLS without the CA: %v, want an unknown authority error", err)
	}
	// Plaintext is not served: the server answers a RESP command with a
	// TLS alert or closes, never with a reply.
	if v, err := doOnce(s.Addr(), nil, "", "", time.Second, false, []string{"PING"}); err == nil {
		t.Fatalf("plaintext PING answered %#v", v)
	}

	// Dial, Restart and the readiness check speak TLS too.
	c, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(DefaultDoTimeout))
	if v, err := c.Do("GET", "k"); err != nil || v != "over tls" {
		t.Fatalf("Dial GET = %#v, %v", v, err)
	}
	c.Close()
	s.Restart()
	if v := mustDo(t, s.Do, "GET", "k"); v != "over tls" {
		t.Fatalf("GET after Restart = %#v", v)
	}

	// A proxy forwards TLS untouched.
	p := NewProxy(t, s.Addr())
	pc, err := DialTLS(p.Addr(), time.Second, s.TLSConfig())
	if err != nil {
		t.Fatalf("DialTLS through the proxy: %v", err)
	}
	pc.SetDeadline(time.Now().Add(DefaultDoTimeout))
	if _, err := pc.Do("AUTH", "tlspw"); err != nil {
		t.Fatal(err)
	}
	if v, err := pc.Do("PING"); err != nil || v != "PONG" {
		t.Fatalf("PING through the proxy = %#v, %v", v, err)
	}
	pc.Close()
}

func TestTLSCertificate(t *testing.T) {
	t.Parallel()
	f, err := writeTLSFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("server.pem is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: f.pool, DNSName: host}); err != nil {
			t.Errorf("certificate for %s: %v", host, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: f.pool, DNSName: "example.com"}); err == nil {
		t.Error("certificate valid for example.com")
	}
	fi, err := os.Stat(f.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("key file mode %v", fi.Mode().Perm())
	}
	if !strings.HasSuffix(f.caFile, "ca.pem") {
		t.Errorf("CA file %q", f.caFile)
	}
}

func TestTLSRefusedByCluster(t *testing.T) {
	t.Parallel()
	f := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		StartCluster(f, 3, WithTLS())
	}()
	<-done
	if !strings.Contains(f.msg, "WithTLS") {
		t.Fatalf("StartCluster with TLS: %q", f.msg)
	}
}
