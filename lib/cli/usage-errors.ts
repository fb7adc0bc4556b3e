// yargs' own wording for two usage errors, said the way an operator needs it: an unknown command
// lists the commands there are, and an unknown option is named once, as it was typed. yargs names
// `--api-key` twice ("api-key, apiKey": it adds the camelCase alias before checking) and without
// its dashes, so each name it reports is matched back to the word on the command line it came from.
import { Parser } from 'yargs/helpers';

/** What the user typed as options, before any `--`: `--name[=v]` and `--no-name`, `-abc` as -a -b -c. */
function typedOptions(argv: string[]): Array<{ names: string[]; shown: string }> {
  const end = argv.indexOf('--');
  const words = end === -1 ? argv : argv.slice(0, end);
  return words.flatMap((w) => {
    if (w.startsWith('--') && w.length > 2) {
      const name = w.slice(2).split('=')[0];
      const bare = name.startsWith('no-') ? name.slice(3) : name;
      return [{ names: [...new Set([name, bare, Parser.camelCase(name), Parser.camelCase(bare)])], shown: `--${name}` }];
    }
    if (/^-[^-\d]/.test(w)) return [...w.slice(1).split('=')[0]].map((ch) => ({ names: [ch], shown: `-${ch}` }));
    return [];
  });
}

/**
 * The message for a yargs validation failure: unknown commands, options and arguments reworded,
 * anything else as yargs says it. `commands` are the command names, listed for an unknown command.
 */
export function usageMessage(msg: string, argv: string[], commands: string[]): string {
  const command = argv.find((w) => commands.includes(w));
  const help = `see hub ${command ? `${command} ` : ''}--help`;
  const args = /^Unknown arguments?: (.+)$/.exec(msg);
  if (!args) return `${msg}; ${help}`;
  const typed = typedOptions(argv);
  const shown = [...new Set(args[1].split(', ').map((name) => typed.find((o) => o.names.includes(name))?.shown ?? name))];
  const options = shown.filter((w) => w.startsWith('-'));
  const extra = shown.filter((w) => !w.startsWith('-'));
  // No command word at all, and a word yargs could not place: that word was meant as the command.
  if (!command && extra.length) return `unknown command ${extra[0]}; the commands are ${commands.join(', ')} (hub alone lists them with what each does)`;
  return [
    options.length && `unknown ${options.length === 1 ? 'option' : 'options'} ${options.join(', ')}`,
    extra.length && `unexpected ${extra.length === 1 ? 'argument' : 'arguments'} ${extra.join(', ')}`,
  ].filter(Boolean).join('; ') + `; ${help}`;
}
