// bfloat16 rounding in JavaScript, as the ops round: helpers/bf16-round.mjs, for the TypeScript tests.
export { roundBf16, roundBf16Array } from './bf16-round.mjs'
