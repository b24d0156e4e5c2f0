package informer

// EachWorkloadIn exposes Reader.eachWorkloadIn to the tests against a control plane,
// which live outside the package (the control plane imports it).
var EachWorkloadIn = Reader.eachWorkloadIn
