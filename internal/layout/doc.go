// Package layout holds the checks of the repository's package layout: which
// package may import which (dependencies run one way: store and config at
// the bottom, then provider, provider/oauth, the vendor packages, collector,
// auth, and cmd wiring them), and that fixed tables are not exported as
// mutable variables. It has no code of its own and imports nothing of the
// module.
package layout
