package authz_test

import (
	"testing"

	"github.com/intentguard/intentguard/api/v2beta1"
	"github.com/intentguard/intentguard/internal/point/istio/authz"
)

func TestValidatePath(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"/", true},
		{"/client-path", true},
		{"/api/*", true},
		{"/*", true},
		{"/users/{*}/orders", true},
		{"/files/{**}", true},
		{"/files/{**}/x.txt", true},
		{"/{*}/{*}/{**}", true},
		{"/a%20b;c=d@e", true},
		{"", false},
		{"api", false},
		{"*/api", false},
		{"/a*b", false},
		{"/a/**", false},
		{"/a b", false},
		{"/é", false},
		{"/files/{**}/{*}", false},
		{"/files/{**}/{**}", false},
		{"/files/{id}", false},
		{"/files/x{*}", false},
		{"/files/{*}/*", false},
		{"/files/{*}/a*b", false},
		{"/files//{*}", false},
		{"/files/{*", false},
	} {
		if err := authz.ValidatePath(tc.path); (err == nil) != tc.ok {
			t.Errorf("ValidatePath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
	}
}

func TestValidateMethod(t *testing.T) {
	for _, m := range authz.Methods {
		if err := authz.ValidateMethod(m); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
	for _, m := range []v2beta1.HTTPMethod{"", "get", "FOO", "*"} {
		if err := authz.ValidateMethod(m); err == nil {
			t.Errorf("%q accepted", m)
		}
	}
	if len(authz.Methods) != 9 {
		t.Fatalf("methods %v: HEAD and every method of the intents schema", authz.Methods)
	}
}
