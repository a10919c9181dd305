#pragma once
/// The shell job's command template: split once into arguments as a POSIX shell would, expanding
/// nothing, with GNU parallel's placeholders substituted per task.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace amorsize::jobs {

/// What a placeholder stands for (GNU parallel's replacement strings).
enum class placeholder {
  line,                   ///< `{}`: the input line.
  no_extension,           ///< `{.}`: the line without the extension of its last path part.
  basename,               ///< `{/}`: the last path part.
  dirname,                ///< `{//}`: the line without its last path part (`.` when it has none).
  basename_no_extension,  ///< `{/.}`: the last path part without its extension.
  task_number,            ///< `{#}`: the task's number, from 1.
  worker_slot,            ///< `{%}`: the worker slot that runs the task, from 1.
};

/// A piece of one argument: literal text, or a placeholder.
struct template_piece {
  bool is_placeholder = false;  ///< True for a placeholder, false for literal text.
  placeholder kind = placeholder::line;  ///< What the placeholder stands for.
  std::string text;             ///< The literal text (empty for a placeholder).
};

/// A command template split into arguments, each a sequence of pieces.
struct command_template {
  std::vector<std::vector<template_piece>> arguments;  ///< The arguments, the command first.
  bool has_placeholder = false;                        ///< False: the line is appended as the last argument.
};

/// Splits `text` into arguments honouring single quotes, double quotes and backslashes as a POSIX
/// shell does, but expanding nothing (`$`, `;`, `*` and the like stay literal text).
///
/// A placeholder is a `{`, up to two of `/`, `.`, `#` and `%`, and a `}`; one of those that GNU
/// parallel does not define (`{..}`) is an input_error, as are an empty command and an unclosed
/// quote. Other braces (`awk '{print $1}'`) are literal text.
command_template parse_command_template(std::string_view text);

/// The values one task substitutes.
struct task_fields {
  std::string_view line;    ///< The input line.
  std::size_t number = 1;   ///< The task's number, from 1.
  int slot = 1;             ///< The worker slot, from 1.
};

/// Returns the arguments of one task: placeholders substituted within their argument (a line with
/// spaces or `;` stays one argument), or the line appended when the template has no placeholder.
std::vector<std::string> expand_arguments(const command_template& command, const task_fields& task);

/// Returns the shell code of one task for `/bin/sh -c` (--shell): the template's text as written,
/// each placeholder replaced by its value in single quotes (or the quoted line appended when there
/// is none), so a substituted line is never interpreted by the shell. Throws like parse_command_template.
std::string expand_for_shell(std::string_view text, const task_fields& task);

/// Returns `arguments` as one line a POSIX shell reads back as the same arguments (each quoted
/// only when it needs it): how records show a command that ran without a shell.
std::string command_line_text(const std::vector<std::string>& arguments);

/// Returns the value `kind` takes for `task`.
std::string substitute(placeholder kind, const task_fields& task);

}  // namespace amorsize::jobs
