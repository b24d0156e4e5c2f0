// Package credentials is the credentials operator: it issues a certificate for the
// service identity of every workload whose pods ask for one with the
// credentials-operator.otterize.com/tls-secret-name annotation, delivers it as a Secret
// in the format the workload reads (PEM, PKCS#12 or JKS), and renews it before it
// expires. The certificate authority is a backend (package backend): the built-in CA or
// a SPIRE server.
package credentials

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Annotation prefixes read on pods: the current one and the older twin; a key under
// the current prefix wins over its twin.
const (
	Prefix       = "credentials-operator.otterize.com/"
	LegacyPrefix = "spire-integration.otterize.com/"
)

// Annotation names (after the prefix).
const (
	AnnSecretName     = "tls-secret-name"
	AnnDNSNames       = "dns-names"
	AnnTTL            = "cert-ttl"
	AnnCertType       = "cert-type"
	AnnCertFile       = "cert-file-name"
	AnnKeyFile        = "key-file-name"
	AnnCAFile         = "ca-file-name"
	AnnKeystoreFile   = "keystore-file-name"
	AnnTruststoreFile = "truststore-file-name"
	AnnJKSPassword    = "jks-password"
	AnnRestart        = "restart-pod-on-certificate-renewal"
)

// PasswordSecretAnnotation names a Secret (key "password") holding the keystore
// password, so that the password is never written in the pod spec.
const PasswordSecretAnnotation = "credentials.intentguard.dev/keystore-password-secret"

// PasswordKey is the key of the password in a password Secret.
const PasswordKey = "password"

// Formats of the delivered credentials.
const (
	FormatPEM    = "pem"
	FormatPKCS12 = "pkcs12"
	FormatJKS    = "jks"
)

// Spec is what a pod's annotations ask for.
type Spec struct {
	SecretName string
	// DNSNames are the extra DNS SANs, after <name>.<namespace>.
	DNSNames []string
	// TTL is the requested lifetime; zero means the operator's default.
	TTL    time.Duration
	Format string
	// File names: the Secret keys the workload mounts.
	CertFile, KeyFile, CAFile, KeystoreFile, TruststoreFile string
	// PasswordSecret names the Secret holding the keystore password; empty means one is
	// generated into <SecretName>-password.
	PasswordSecret string
	// Restart asks for a rolling restart of the workload when its certificate is renewed.
	Restart bool
}

// SecretNameOf returns the Secret a pod's annotations ask for, if any.
func SecretNameOf(annotations map[string]string) string {
	if v := annotations[Prefix+AnnSecretName]; v != "" {
		return v
	}
	return annotations[LegacyPrefix+AnnSecretName]
}

func get(annotations map[string]string, name string) string {
	if v, ok := annotations[Prefix+name]; ok {
		return strings.TrimSpace(v)
	}
	return strings.TrimSpace(annotations[LegacyPrefix+name])
}

// ParseSpec reads a pod's annotations. It returns an error a user can act on for any
// value it cannot honour; the pod then gets no Secret rather than a surprising one.
func ParseSpec(annotations map[string]string) (Spec, error) {
	s := Spec{SecretName: SecretNameOf(annotations)}
	if errs := validation.IsDNS1123Subdomain(s.SecretName); len(errs) > 0 {
		return Spec{}, fmt.Errorf("%s%s %q is not a valid Secret name: %s", Prefix, AnnSecretName, s.SecretName, strings.Join(errs, "; "))
	}
	if v := get(annotations, AnnDNSNames); v != "" {
		for _, n := range strings.Split(v, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				continue
			}
			check := strings.TrimPrefix(n, "*.")
			if errs := validation.IsDNS1123Subdomain(check); len(errs) > 0 {
				return Spec{}, fmt.Errorf("%s%s: %q is not a DNS name: %s", Prefix, AnnDNSNames, n, strings.Join(errs, "; "))
			}
			s.DNSNames = append(s.DNSNames, n)
		}
		// A wildcard that covers another listed name is refused by SPIRE and confuses
		// clients that pick the most specific match; say so here instead.
		for _, w := range s.DNSNames {
			if !strings.HasPrefix(w, "*.") {
				continue
			}
			for _, n := range s.DNSNames {
				if _, parent, ok := strings.Cut(n, "."); ok && n != w && parent == w[2:] {
					return Spec{}, fmt.Errorf("%s%s: %q is covered by the wildcard %q; list one or the other", Prefix, AnnDNSNames, n, w)
				}
			}
		}
	}
	if v := get(annotations, AnnTTL); v != "" {
		secs, err := strconv.ParseInt(v, 10, 32)
		if err != nil || secs <= 0 {
			return Spec{}, fmt.Errorf("%s%s %q is not a positive number of seconds", Prefix, AnnTTL, v)
		}
		s.TTL = time.Duration(secs) * time.Second
	}
	s.Format = strings.ToLower(get(annotations, AnnCertType))
	switch s.Format {
	case "":
		s.Format = FormatPEM
	case FormatPEM, FormatJKS:
	case "p12", "pfx", FormatPKCS12:
		s.Format = FormatPKCS12
	default:
		return Spec{}, fmt.Errorf("%s%s %q is not one of pem, pkcs12, jks", Prefix, AnnCertType, s.Format)
	}
	if get(annotations, AnnJKSPassword) != "" {
		return Spec{}, fmt.Errorf("%s%s puts the keystore password in plain text in the pod spec, which this operator refuses; "+
			"put it under key %q of a Secret and name that Secret with the %s annotation (or leave both out to have one generated)",
			Prefix, AnnJKSPassword, PasswordKey, PasswordSecretAnnotation)
	}
	s.PasswordSecret = strings.TrimSpace(annotations[PasswordSecretAnnotation])
	if s.PasswordSecret != "" {
		if errs := validation.IsDNS1123Subdomain(s.PasswordSecret); len(errs) > 0 {
			return Spec{}, fmt.Errorf("%s %q is not a valid Secret name: %s", PasswordSecretAnnotation, s.PasswordSecret, strings.Join(errs, "; "))
		}
	}
	keystoreExt, truststoreExt := "jks", "jks"
	if s.Format == FormatPKCS12 {
		keystoreExt, truststoreExt = "p12", "p12"
	}
	files := []struct {
		dst      *string
		ann, def string
	}{
		{&s.CertFile, AnnCertFile, "cert.pem"},
		{&s.KeyFile, AnnKeyFile, "key.pem"},
		{&s.CAFile, AnnCAFile, "ca.pem"},
		{&s.KeystoreFile, AnnKeystoreFile, "keystore." + keystoreExt},
		{&s.TruststoreFile, AnnTruststoreFile, "truststore." + truststoreExt},
	}
	used := map[string]string{}
	for _, f := range files {
		*f.dst = f.def
		if v := get(annotations, f.ann); v != "" {
			*f.dst = v
		}
		if errs := validation.IsConfigMapKey(*f.dst); len(errs) > 0 {
			return Spec{}, fmt.Errorf("%s%s %q is not a valid Secret key: %s", Prefix, f.ann, *f.dst, strings.Join(errs, "; "))
		}
	}
	for _, k := range s.fileKeys() {
		if prev, ok := used[k.name]; ok {
			return Spec{}, fmt.Errorf("file name %q is used for both %s and %s", k.name, prev, k.ann)
		}
		used[k.name] = k.ann
	}
	if v := get(annotations, AnnRestart); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Spec{}, fmt.Errorf("%s%s %q is not true or false", Prefix, AnnRestart, v)
		}
		s.Restart = b
	}
	return s, nil
}

type fileKey struct{ name, ann string }

// fileKeys are the Secret keys the spec's format writes.
func (s Spec) fileKeys() []fileKey {
	if s.Format == FormatPEM {
		return []fileKey{{s.CertFile, AnnCertFile}, {s.KeyFile, AnnKeyFile}, {s.CAFile, AnnCAFile}}
	}
	return []fileKey{{s.KeystoreFile, AnnKeystoreFile}, {s.TruststoreFile, AnnTruststoreFile}}
}

// NeedsPassword reports whether the format is a password-protected keystore.
func (s Spec) NeedsPassword() bool { return s.Format != FormatPEM }

// PasswordSecretName is the Secret the keystore password is read from or generated into.
func (s Spec) PasswordSecretName() string {
	if s.PasswordSecret != "" {
		return s.PasswordSecret
	}
	return s.SecretName + "-password"
}
