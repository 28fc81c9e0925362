/**
 * The `caretaker` command line (the README's Command line section). Every
 * command returns an exit code: 0 ok, 1 warning, 2 critical, 3 error or
 * unknown (bad usage, invalid config, unreachable target). A user mistake
 * prints one line, never a stack trace.
 */
import { Command, CommanderError, Option } from 'commander';
import { UsageError, coerceError } from './errors';
import { redactSecretsIn } from './logger';
import { cliEnvironment } from './config/environment';
import { processIO, println, type CliIO } from './commands/io';
import { runCommand } from './commands/run';
import { checkConfigCommand, schedulesCommand, tasksCommand } from './commands/listings';
import { enqueueCommand, migrateCommand } from './commands/queue-commands';
import { startCommand } from './commands/start';
import { statusCommand } from './commands/status';
import { packageVersion } from './commands/common';
import { reportCommand } from './commands/report';
import { checklistCommand, doneCommand } from './commands/checklist';
import { silenceAddCommand, silenceExpireCommand, silenceListCommand, unwaiveCommand, waiveCommand, waiversCommand } from './commands/suppress';

const EXIT_UNKNOWN = 3;

function buildProgram(io: CliIO, setExit: (code: number) => void): Command {
  const program = new Command('caretaker')
    .description('Runs an operations runbook unattended: scheduled maintenance and health checks on BullMQ.')
    .version(packageVersion(), '-V, --version', 'print the version')
    .option('-c, --config <file>', 'config file (default: $CARETAKER_CONFIG, else local defaults from the environment)')
    .exitOverride()
    .showHelpAfterError('(run "caretaker --help" for usage)')
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) });
  const cfg = (cmd: Command) => cmd.optsWithGlobals<{ config?: string }>().config;
  const collect = (value: string, previous: string[] = []) => [...previous, value];

  program
    .command('start')
    .description('start caretaker (all roles in one process by default)')
    .addOption(new Option('--role <role>', 'which role to run').choices(['all', 'scheduler', 'worker', 'web']).default('all'))
    .action(async (opts, cmd: Command) => setExit(await startCommand(io, { ...opts, config: cfg(cmd) })));

  program
    .command('run')
    .description('run a task now in this process and print its result')
    .argument('<task>', 'task name (see "caretaker tasks")')
    .option('--target <name>', 'target to run on (required when the task has several)')
    .option('--dry-run', 'report what would change, change nothing')
    .option('--json', 'print exactly one TaskResult as JSON on stdout')
    .option('--param <key=value>', 'override a task param for this run (repeatable)', collect)
    .action(async (task: string, opts, cmd: Command) => setExit(await runCommand(io, task, { ...opts, config: cfg(cmd) })));

  program
    .command('enqueue')
    .description('queue a task for the workers now (schedules unchanged)')
    .argument('<task>', 'task name')
    .option('--target <name>', 'only this target (default: every target of its kind)')
    .option('--dry-run', 'the run reports what it would change, changes nothing')
    .action(async (task: string, opts, cmd: Command) => setExit(await enqueueCommand(io, task, { ...opts, config: cfg(cmd) })));

  program
    .command('status')
    .description('what is wrong now: every scheduled check, its state and open findings; exit code = the worst (0 ok, 1 warning, 2 critical, 3 unknown)')
    .option('--json', 'the whole status as JSON')
    .option('--task <name>', 'only this task')
    .option('--target <name>', 'only this target')
    .action(async (opts, cmd: Command) => setExit(await statusCommand(io, { ...opts, config: cfg(cmd) })));

  program
    .command('tasks')
    .description('list the tasks')
    .option('--json', 'as JSON, with each task\'s params schema')
    .action((opts) => setExit(tasksCommand(io, opts)));

  program
    .command('schedules')
    .description('list the schedules with their next fire times')
    .option('--json', 'as JSON')
    .action((opts, cmd: Command) => setExit(schedulesCommand(io, { ...opts, config: cfg(cmd) })));

  program
    .command('report')
    .description('reports built from the stored history')
    .command('weekly')
    .description('the weekly report of an ISO week (default: the last complete one)')
    .option('--week <YYYY-Www>', 'the ISO week, e.g. 2026-W48')
    .option('--out <file>', 'write the report as a self-contained HTML file')
    .option('--send', 'email it to notifications.email.to')
    .action(async (opts, cmd: Command) => setExit(await reportCommand(io, { ...opts, config: cfg(cmd) })));

  const silence = program.command('silence').description('silences: matching problems do not notify until the silence ends (stored in the state database)');
  silence
    .command('add')
    .description('silence problems matching every given matcher (exact or glob)')
    .option('--task <name>', 'task (exact or glob)')
    .option('--target <name>', 'target (exact or glob)')
    .option('--code <code>', 'finding code (exact or glob)')
    .option('--subject <subject>', 'finding subject (exact or glob)')
    .option('--for <duration>', 'how long from now, e.g. 2h, 90m, 1d')
    .option('--until <time>', 'or until when (ISO 8601 with a zone)')
    .option('--reason <text>', 'why (required)')
    .option('--by <name>', 'who (default: your login name)')
    .option('--json', 'print the silence as JSON')
    .action(async (opts, cmd: Command) => setExit(await silenceAddCommand(io, { ...opts, config: cfg(cmd) })));
  silence
    .command('list')
    .description('silences in force or to come, and those ended in the last 7 days')
    .option('--json', 'as JSON')
    .action(async (opts, cmd: Command) => setExit(await silenceListCommand(io, { ...opts, config: cfg(cmd) })));
  silence
    .command('expire')
    .description('end a silence now; what it held alerts within 30 s if still open')
    .argument('<id>', 'the silence (see "caretaker silence list")')
    .option('--by <name>', 'who (default: your login name)')
    .action(async (id: string, opts, cmd: Command) => setExit(await silenceExpireCommand(io, id, { ...opts, config: cfg(cmd) })));

  program
    .command('waive')
    .description('accept a finding: it stops alerting and leaves the open list until the waiver lapses or the finding gets worse')
    .option('--task <name>', 'task (exact or glob; required)')
    .option('--target <name>', 'target (exact or glob; required)')
    .option('--code <code>', 'finding code (exact or glob; required)')
    .option('--subject <subject>', 'finding subject (exact or glob; required)')
    .option('--reason <text>', 'why it is fine (required)')
    .option('--until <date>', 'when it lapses: a date (as that day begins, UTC) or an ISO 8601 time; default never')
    .option('--severity <level>', 'the worst severity accepted (default: the open finding\'s, else warning)')
    .option('--by <name>', 'who (default: your login name)')
    .option('--json', 'print the waiver as JSON')
    .action(async (opts, cmd: Command) => setExit(await waiveCommand(io, { ...opts, config: cfg(cmd) })));

  program
    .command('waivers')
    .description("the waivers in force (the config's and the stored ones), those lapsing first first")
    .option('--json', 'as JSON')
    .action(async (opts, cmd: Command) => setExit(await waiversCommand(io, { ...opts, config: cfg(cmd) })));

  program
    .command('unwaive')
    .description('remove a stored waiver: the finding is open again')
    .argument('<id>', 'the waiver (see "caretaker waivers")')
    .option('--by <name>', 'who (default: your login name)')
    .action(async (id: string, opts, cmd: Command) => setExit(await unwaiveCommand(io, id, { ...opts, config: cfg(cmd) })));

  program
    .command('checklist')
    .description('where each manual runbook line (checklist: in the config) stands: done, due or overdue; exit 1 when one is overdue')
    .option('--json', 'as JSON')
    .action(async (opts, cmd: Command) => setExit(await checklistCommand(io, { ...opts, config: cfg(cmd) })));

  program
    .command('done')
    .description('mark a checklist item done for its current period (kept with who, when and the note)')
    .argument('<item>', 'the item\'s id (see "caretaker checklist")')
    .option('--note <text>', 'what was done, for the weekly report')
    .option('--by <name>', 'who (default: your login name)')
    .option('--json', 'print the record as JSON')
    .action(async (item: string, opts, cmd: Command) => setExit(await doneCommand(io, item, { ...opts, config: cfg(cmd) })));

  program
    .command('check-config')
    .description('validate the config and print the resolved schedules')
    .option('--config <file>', 'config file to check')
    .option('--connect', 'also try every server it names (targets, state database, Redis, SMTP), each with a short timeout; exit 3 if one fails')
    .action(async (opts, cmd: Command) => setExit(await checkConfigCommand(io, { config: opts.config ?? cfg(cmd), connect: opts.connect === true })));

  program
    .command('migrate')
    .description("bring the state database's schema up to date")
    .action(async (_opts, cmd: Command) => setExit(await migrateCommand(io, { config: cfg(cmd) })));

  return program;
}

/** Runs the CLI with `argv` as `process.argv` (node, script, args...); resolves with the exit code. */
export async function cli(argv: readonly string[], io: CliIO = processIO()): Promise<number> {
  let exitCode = 0;
  const program = buildProgram(io, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync([...argv]);
    return exitCode;
  } catch (thrown) {
    if (thrown instanceof CommanderError) {
      // Commander printed its message already; help and --version are not errors.
      return thrown.code === 'commander.helpDisplayed' || thrown.code === 'commander.version' || thrown.code === 'commander.help' ? 0 : EXIT_UNKNOWN;
    }
    const err = coerceError(thrown);
    if (err instanceof UsageError) {
      println(io.stderr, `caretaker: ${err.message}`);
    } else {
      // Not a user mistake: a target or service failed. Still one line; the stack with CARETAKER_DEBUG=1.
      println(io.stderr, `caretaker: ${redactSecretsIn(err.message)}`);
      if (cliEnvironment(io.env).debug && err.stack) println(io.stderr, err.stack);
    }
    return EXIT_UNKNOWN;
  }
}

if (require.main === module) {
  void cli(process.argv).then((code) => {
    process.exitCode = code;
  });
}
