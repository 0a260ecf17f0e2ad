// The q8 export's quantized ops, as onnxruntime's quantize_dynamic writes them, so that onnxruntime fuses
// each linear layer into one DynamicQuantizeMatMul (its DynamicQuantizeMatMulFusion) and transformers.js
// loads the file as dtype 'q8' (onnx/model_quantized.onnx):
//   linear      (xq, xs, xz) = DynamicQuantizeLinear(x)      uint8, one scale and zero point per call
//               y = Cast(MatMulInteger(xq, Wq, xz)) · (xs · Ws) + b
//               Wq int8 [in, out], one scale per output (Ws [out], 7 bits: quantize.ts says why)
//   embedding   e = Cast(Gather(Eq, ids)) · Gather(Es, ids)  Eq int8 [V, H], Es [V, 1] (all 8 bits)
// Each linear quantizes its input itself, as quantize_dynamic's graphs do: onnxruntime merges the three
// identical quantizations of q, k and v's input into one (its common-subexpression pass) and fuses those three
// as MatMulIntegerToFloat; the other linears, whose quantized input feeds one product, as DynamicQuantizeMatMul
// (seen in the optimized graph of a 12-layer export: 12 DynamicQuantizeLinear, 36 of each fused op).
import { DataType, float32Bytes } from './onnx-model.js'
import { ReusedBuffer, type GraphBuilder } from './graph-builder.js'
import { MATMUL_LEVELS, TABLE_LEVELS, quantizeRowsInto, rowScales } from './quantize.js'

/** A weight matrix [rows, cols] row-major, its values fetched when the file is written. */
export interface MatrixSource {
  shape: readonly number[]
  values(into: Float32Array): void
}

/** Fetches a matrix and quantizes it per row, each time a deferred part asks (scales, then the int8 values). */
class RowQuantizer {
  private readonly values = new ReusedBuffer(Float32Array)
  private readonly ints = new ReusedBuffer(Int8Array)

  scales(m: MatrixSource, levels: number): Float32Array {
    const [rows, cols] = m.shape
    return rowScales(this.fetch(m), rows, cols, levels)
  }

  quantized(m: MatrixSource, levels: number, transpose: boolean): Uint8Array {
    const [rows, cols] = m.shape
    const a = this.fetch(m)
    const out = this.ints.take(rows * cols)
    quantizeRowsInto(a, rows, cols, rowScales(a, rows, cols, levels), levels, out, transpose)
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
  }

  private fetch(m: MatrixSource): Float32Array {
    const a = this.values.take(m.shape[0] * m.shape[1])
    m.values(a)
    return a
  }
}

const quantizers = new WeakMap<GraphBuilder, RowQuantizer>()
function quantizer(g: GraphBuilder): RowQuantizer {
  let q = quantizers.get(g)
  if (!q) quantizers.set(g, (q = new RowQuantizer()))
  return q
}

/** x · Wᵀ + b for a checkpoint's W [out, in] named `name`, in integers (see the header; bias null: none); returns y's name. */
export function quantizedLinear(g: GraphBuilder, x: string, name: string, w: MatrixSource, bias: string | null): string {
  const [out, inp] = w.shape
  const q = quantizer(g)
  const wq = g.initializer(`${name}_quantized`, [inp, out], DataType.INT8, {
    byteLength: out * inp,
    bytes: () => q.quantized(w, MATMUL_LEVELS, true),
  })
  const ws = g.initializer(`${name}_scale`, [out], DataType.FLOAT, {
    byteLength: 4 * out,
    bytes: () => float32Bytes(q.scales(w, MATMUL_LEVELS)),
  })
  const [xq, xs, xz] = g.opOutputs('DynamicQuantizeLinear', [x], 3)
  const product = g.op('Cast', [g.op('MatMulInteger', [xq, wq, xz])], { to: DataType.FLOAT })
  const y = g.op('Mul', [product, g.op('Mul', [xs, ws])])
  return bias === null ? y : g.op('Add', [y, bias])
}

/** Rows of the table [V, H] named `name` at `ids`, stored int8 with a scale per row; returns the rows' name. */
export function quantizedGather(g: GraphBuilder, name: string, table: MatrixSource, ids: string): string {
  const [rows, cols] = table.shape
  const q = quantizer(g)
  const eq = g.initializer(`${name}_quantized`, [rows, cols], DataType.INT8, {
    byteLength: rows * cols,
    bytes: () => q.quantized(table, TABLE_LEVELS, false),
  })
  const es = g.initializer(`${name}_scale`, [rows, 1], DataType.FLOAT, {
    byteLength: 4 * rows,
    bytes: () => float32Bytes(q.scales(table, TABLE_LEVELS)),
  })
  return g.op('Mul', [g.op('Cast', [g.op('Gather', [eq, ids])], { to: DataType.FLOAT }), g.op('Gather', [es, ids])])
}
