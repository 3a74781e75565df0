package dev.beamllama.model.config;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * The one way an enum option is read from a command line or a flag: its constant's name in lower
 * case, {@code -} for {@code _} ({@code --engine=cuda}, {@code --specialTokens=parse}), any case
 * accepted; anything else is an error that lists the accepted values.
 */
public final class EnumOption {
  private EnumOption() {}

  /** {@code value} of option {@code name} (for the message) as a constant of {@code type}. */
  public static <E extends Enum<E>> E parse(Class<E> type, String name, String value) {
    String wanted = value == null ? "" : value.trim();
    for (E constant : type.getEnumConstants()) {
      if (label(constant).equalsIgnoreCase(wanted)) {
        return constant;
      }
    }
    throw new IllegalArgumentException("unknown --" + name + " '" + value + "': use " + choices(type));
  }

  /** How {@code constant} is written on a command line and in records. */
  public static String label(Enum<?> constant) {
    return constant.name().toLowerCase(Locale.ROOT).replace('_', '-');
  }

  /** The accepted values, for usage text: {@code auto, cpu or cuda}. */
  public static <E extends Enum<E>> String choices(Class<E> type) {
    String[] labels = Arrays.stream(type.getEnumConstants()).map(EnumOption::label).toArray(String[]::new);
    return labels.length == 1 ? labels[0]
        : Arrays.stream(labels, 0, labels.length - 1).collect(Collectors.joining(", ")) + " or " + labels[labels.length - 1];
  }
}
