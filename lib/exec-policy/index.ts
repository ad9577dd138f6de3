export {
  ExecPolicy,
  ExecPolicyError,
  loadExecPolicy,
  parseRules,
  rulesFiles,
  RULES_FILE_NAME,
  type ExecRule,
  type RuleDecision,
  type RuleVerdict,
} from './rules.js';
export { JsonSyntaxError, parseJsonWithLines, type JsonPath, type LocatedJson } from './json-locations.js';
export { loadShellParser } from './shell-script.js';
