// The rotary embedding's angle of position t and pair i < HS/2, as native/common/rope.h forms it for the kernels
// (the float32 power formed in double and rounded once, then a float32 reciprocal and product): the ONNX export's
// cos and sin tables are taken of these very floats.
export function ropeAngle(t: number, i: number, HS: number, theta: number): number {
  const f = Math.fround
  const exponent = f(f(2 * i) / f(HS))
  const invFreq = f(1 / f(Math.pow(f(theta), exponent)))
  return f(f(t) * invFreq)
}
