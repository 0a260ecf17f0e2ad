// The prompts a model's encodeQuery and encodeDocument apply (sentence-transformers' encode_query and
// encode_document): the first of these names the model has as a prompt, else its default prompt.
export const ROLE_PROMPTS = { query: ['query'], document: ['document', 'passage', 'corpus'] } as const

/** The text a role's texts are prefixed with, from a model's prompts and default prompt name ('' when none applies). */
export function rolePrefixText(
  prompts: Readonly<Record<string, string>>,
  defaultPromptName: string | undefined,
  role: 'query' | 'document',
): string {
  const name = ROLE_PROMPTS[role].find((n) => Object.hasOwn(prompts, n)) ?? defaultPromptName
  return name !== undefined ? (prompts[name] ?? '') : ''
}
