import { UpdatePlanArgs } from '../../../protocol/index.js';
import { defineTool, type ToolContext, type ToolHandler, type ToolOutput } from '../tool.js';

const DESCRIPTION =
  'Record your plan for the task as a list of short steps, each pending, in_progress or completed. ' +
  'Send the whole list each time; keep at most one step in_progress. The user sees the plan; ' +
  '`explanation` says briefly why it changed.';

export function updatePlan(args: UpdatePlanArgs, ctx: ToolContext): ToolOutput {
  const inProgress = args.plan.filter((item) => item.status === 'in_progress').length;
  if (inProgress > 1) {
    return { text: `At most one step may be in_progress; this plan has ${inProgress}. Plan not updated.`, success: false };
  }
  ctx.emit({
    type: 'plan_update',
    ...(args.explanation !== undefined ? { explanation: args.explanation } : {}),
    plan: args.plan.map((item) => ({ step: item.step, status: item.status })),
  });
  return { text: 'Plan updated', success: true };
}

export const updatePlanHandler: ToolHandler<UpdatePlanArgs> = {
  name: 'update_plan',
  description: DESCRIPTION,
  args: UpdatePlanArgs,
  run: async (args, ctx) => updatePlan(args, ctx),
};

export const updatePlanTool = defineTool(updatePlanHandler);
