package controlplane

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
)

// EtcdPut writes value under key through etcd's JSON gateway, bypassing the API server's
// admission: how a test holds an object that an earlier schema accepted and the current
// one refuses. The API server's watch picks the write up as any other change.
func (c *Cluster) EtcdPut(key string, value []byte) error {
	return etcdCall(c.etcdURL(), "put", map[string]string{
		"key": base64.StdEncoding.EncodeToString([]byte(key)), "value": base64.StdEncoding.EncodeToString(value),
	})
}

// EtcdDelete removes key through etcd's JSON gateway.
func (c *Cluster) EtcdDelete(key string) error {
	return etcdCall(c.etcdURL(), "deleterange", map[string]string{"key": base64.StdEncoding.EncodeToString([]byte(key))})
}

func etcdCall(etcdURL, op string, body map[string]string) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("etcd %s: %w", op, err)
	}
	resp, err := http.Post(etcdURL+"/v3/kv/"+op, "application/json", bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("etcd %s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd %s: %s", op, resp.Status)
	}
	return nil
}
