package v2beta1

// Hub marks v2beta1 as the version every other ClientIntents version converts through;
// it is the version the API server stores.
func (*ClientIntents) Hub() {}

// Hub marks v2beta1 as the version every other ProtectedService version converts through.
func (*ProtectedService) Hub() {}
