package credentials

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"time"

	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/intentguard/intentguard/internal/credentials/backend"
	"github.com/intentguard/intentguard/internal/pki"
)

// keyAlias is the alias of the workload's key entry in a keystore.
const keyAlias = "workload"

// Render returns the Secret data for a credential in the spec's format. password is
// used only by keystore formats.
func Render(spec Spec, cred *backend.Credential, password []byte) (map[string][]byte, error) {
	switch spec.Format {
	case FormatPEM:
		key, err := pki.EncodeKey(cred.Key)
		if err != nil {
			return nil, err
		}
		return map[string][]byte{
			spec.CertFile: pki.EncodeCerts(cred.Chain...),
			spec.KeyFile:  key,
			spec.CAFile:   pki.EncodeCerts(cred.Roots...),
		}, nil
	case FormatPKCS12:
		ks, err := pkcs12.Modern.Encode(cred.Key, cred.Leaf(), cred.Chain[1:], string(password))
		if err != nil {
			return nil, fmt.Errorf("encoding PKCS#12 keystore: %w", err)
		}
		ts, err := pkcs12.Modern.EncodeTrustStore(cred.Roots, string(password))
		if err != nil {
			return nil, fmt.Errorf("encoding PKCS#12 truststore: %w", err)
		}
		return map[string][]byte{spec.KeystoreFile: ks, spec.TruststoreFile: ts}, nil
	case FormatJKS:
		return renderJKS(spec, cred, password)
	}
	return nil, fmt.Errorf("unknown format %q", spec.Format)
}

func renderJKS(spec Spec, cred *backend.Credential, password []byte) (map[string][]byte, error) {
	keyDER, err := x509.MarshalPKCS8PrivateKey(cred.Key)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	now := time.Now()
	ks := keystore.New()
	entry := keystore.PrivateKeyEntry{CreationTime: now, PrivateKey: keyDER}
	for _, c := range cred.Chain {
		entry.CertificateChain = append(entry.CertificateChain, keystore.Certificate{Type: "X509", Content: c.Raw})
	}
	if err := ks.SetPrivateKeyEntry(keyAlias, entry, password); err != nil {
		return nil, fmt.Errorf("adding key to JKS keystore: %w", err)
	}
	var ksBuf bytes.Buffer
	if err := ks.Store(&ksBuf, password); err != nil {
		return nil, fmt.Errorf("encoding JKS keystore: %w", err)
	}
	ts := keystore.New()
	for i, c := range cred.Roots {
		if err := ts.SetTrustedCertificateEntry(fmt.Sprintf("ca-%d", i), keystore.TrustedCertificateEntry{
			CreationTime: now, Certificate: keystore.Certificate{Type: "X509", Content: c.Raw},
		}); err != nil {
			return nil, fmt.Errorf("adding CA to JKS truststore: %w", err)
		}
	}
	var tsBuf bytes.Buffer
	if err := ts.Store(&tsBuf, password); err != nil {
		return nil, fmt.Errorf("encoding JKS truststore: %w", err)
	}
	return map[string][]byte{spec.KeystoreFile: ksBuf.Bytes(), spec.TruststoreFile: tsBuf.Bytes()}, nil
}

// Parsed is what a rendered Secret holds, read back.
type Parsed struct {
	Key   any
	Chain []*x509.Certificate
	Roots []*x509.Certificate
}

// Parse reads Secret data written by Render. A keystore that does not open with
// password is an error, which is how a changed password is noticed.
func Parse(spec Spec, data map[string][]byte, password []byte) (*Parsed, error) {
	switch spec.Format {
	case FormatPEM:
		chain, err := pki.ParseCerts(data[spec.CertFile])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.CertFile, err)
		}
		roots, err := pki.ParseCerts(data[spec.CAFile])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.CAFile, err)
		}
		key, err := pki.ParseKey(data[spec.KeyFile])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.KeyFile, err)
		}
		return &Parsed{Key: key, Chain: chain, Roots: roots}, nil
	case FormatPKCS12:
		key, leaf, cas, err := pkcs12.DecodeChain(data[spec.KeystoreFile], string(password))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.KeystoreFile, err)
		}
		roots, err := pkcs12.DecodeTrustStore(data[spec.TruststoreFile], string(password))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.TruststoreFile, err)
		}
		return &Parsed{Key: key, Chain: append([]*x509.Certificate{leaf}, cas...), Roots: roots}, nil
	case FormatJKS:
		ks := keystore.New()
		if err := ks.Load(bytes.NewReader(data[spec.KeystoreFile]), password); err != nil {
			return nil, fmt.Errorf("%s: %w", spec.KeystoreFile, err)
		}
		entry, err := ks.GetPrivateKeyEntry(keyAlias, password)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.KeystoreFile, err)
		}
		key, err := x509.ParsePKCS8PrivateKey(entry.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.KeystoreFile, err)
		}
		p := &Parsed{Key: key}
		for _, c := range entry.CertificateChain {
			cert, err := x509.ParseCertificate(c.Content)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", spec.KeystoreFile, err)
			}
			p.Chain = append(p.Chain, cert)
		}
		ts := keystore.New()
		if err := ts.Load(bytes.NewReader(data[spec.TruststoreFile]), password); err != nil {
			return nil, fmt.Errorf("%s: %w", spec.TruststoreFile, err)
		}
		for _, alias := range ts.Aliases() {
			e, err := ts.GetTrustedCertificateEntry(alias)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", spec.TruststoreFile, err)
			}
			cert, err := x509.ParseCertificate(e.Certificate.Content)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", spec.TruststoreFile, err)
			}
			p.Roots = append(p.Roots, cert)
		}
		return p, nil
	}
	return nil, fmt.Errorf("unknown format %q", spec.Format)
}
