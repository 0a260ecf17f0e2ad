// Environment switches set around one piece of a test (the native ops and the model read them at each call).

/** fn() awaited with the variables of `env` set (undefined: unset), then each as it was. */
export async function withEnv<T>(env: Record<string, string | undefined>, fn: () => T | Promise<T>): Promise<T> {
  const before = Object.keys(env).map((k) => [k, process.env[k]] as const)
  const put = (k: string, v: string | undefined) => (v === undefined ? delete process.env[k] : (process.env[k] = v))
  for (const [k, v] of Object.entries(env)) put(k, v)
  try {
    return await fn()
  } finally {
    before.forEach(([k, v]) => put(k, v))
  }
}
