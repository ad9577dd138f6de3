/**
 * troupe/testing: helpers for testing agents built on troupe without a model API key.
 *
 * {@link startFakeModelServer} runs a scripted, OpenAI-compatible model server on loopback;
 * point the agent's `OPENAI_BASE_URL` at its `url`.
 *
 * @packageDocumentation
 */
export {
  startFakeModelServer,
  type CutStep,
  type FakeModelServer,
  type FakeModelServerOptions,
  type HangStep,
  type HttpErrorStep,
  type RecordedRequest,
  type ReplyStep,
  type ResponseStep,
  type ScriptItem,
  type ScriptStep,
  type ScriptUsage,
  type StepOptions,
} from './fake-model-server.js';
export { inputItems, inputTexts, mentions, outputFor, outputOrder, spawnedAgentIds } from './requests.js';
