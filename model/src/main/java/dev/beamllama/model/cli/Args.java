package dev.beamllama.model.cli;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

/** {@code --name value} options and {@code --flag} switches of one subcommand, checked against what it accepts. */
final class Args {
  /** A command line that cannot be run; the message says what to fix. */
  static final class UsageException extends RuntimeException {
    UsageException(String message) {
      super(message);
    }
  }

  private final Map<String, String> values = new HashMap<>();
  private final Set<String> flags = new HashSet<>();

  Args(String[] argv, int from, Set<String> valueOptions, Set<String> flagOptions) {
    for (int i = from; i < argv.length; i++) {
      String arg = argv[i];
      if (!arg.startsWith("--")) {
        throw new UsageException("unexpected argument '" + arg + "'");
      }
      String name = arg.substring(2);
      String inline = null;
      int eq = name.indexOf('=');
      if (eq >= 0) {
        inline = name.substring(eq + 1);
        name = name.substring(0, eq);
      }
      if (flagOptions.contains(name) && inline == null) {
        flags.add(name);
      } else if (valueOptions.contains(name)) {
        if (inline == null) {
          if (i + 1 >= argv.length) {
            throw new UsageException("--" + name + " needs a value");
          }
          inline = argv[++i];
        }
        if (values.put(name, inline) != null) {
          throw new UsageException("--" + name + " is given twice");
        }
      } else {
        throw new UsageException("unknown option --" + name);
      }
    }
  }

  boolean flag(String name) {
    return flags.contains(name);
  }

  boolean has(String name) {
    return values.containsKey(name);
  }

  String get(String name) {
    return values.get(name);
  }

  String required(String name) {
    String value = values.get(name);
    if (value == null) {
      throw new UsageException("--" + name + " is required");
    }
    return value;
  }

  int intValue(String name, int fallback) {
    return parse(name, fallback, Integer::parseInt, "an integer");
  }

  long longValue(String name, long fallback) {
    return parse(name, fallback, Long::parseLong, "an integer");
  }

  double doubleValue(String name, double fallback) {
    return parse(name, fallback, Double::parseDouble, "a number");
  }

  private <T> T parse(String name, T fallback, java.util.function.Function<String, T> parser, String kind) {
    String value = values.get(name);
    if (value == null) {
      return fallback;
    }
    try {
      return parser.apply(value.trim());
    } catch (NumberFormatException e) {
      throw new UsageException("--" + name + " must be " + kind + ", got '" + value + "'");
    }
  }

  /** A comma-separated list of token ids, e.g. {@code 1,2,3}. */
  int[] ids(String name) {
    String value = required(name).trim();
    if (value.isEmpty()) {
      return new int[0];
    }
    String[] parts = value.split(",");
    int[] ids = new int[parts.length];
    for (int i = 0; i < parts.length; i++) {
      try {
        ids[i] = Integer.parseInt(parts[i].trim());
      } catch (NumberFormatException e) {
        throw new UsageException("--" + name + " must be comma-separated integers, got '" + parts[i] + "'");
      }
    }
    return ids;
  }
}
