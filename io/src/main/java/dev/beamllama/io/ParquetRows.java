package dev.beamllama.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.channels.SeekableByteChannel;
import java.nio.ByteBuffer;
import java.util.Collection;
import java.util.Map;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.Schema;
import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.avro.AvroParquetReader;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.hadoop.ParquetReader;
import org.apache.parquet.io.DelegatingSeekableInputStream;
import org.apache.parquet.io.InputFile;
import org.apache.parquet.io.SeekableInputStream;

/**
 * Reads the rows of a Parquet file from a Beam channel as JSON objects, so that Parquet and JSONL
 * records go through the same validation. Any schema is read; rows without the expected fields
 * fail validation one by one and are accounted for.
 */
final class ParquetRows {
  private static final JsonNodeFactory JSON = JsonNodeFactory.instance;

  interface Visitor {
    void row(long number, JsonNode row) throws IOException;
  }

  private ParquetRows() {}

  static void read(SeekableByteChannel channel, Visitor visitor) throws IOException {
    Configuration conf = new Configuration(false);
    try (ParquetReader<GenericRecord> reader = AvroParquetReader.<GenericRecord>builder(new ChannelInputFile(channel))
        .withConf(conf)
        .build()) {
      long number = 1;
      GenericRecord row;
      while ((row = reader.read()) != null) {
        visitor.row(number++, toJson(row));
      }
    }
  }

  /** The number of rows the file's footer declares, without reading them. */
  static long rowCount(SeekableByteChannel channel) throws IOException {
    try (ParquetFileReader reader = ParquetFileReader.open(new ChannelInputFile(channel))) {
      return reader.getRecordCount();
    }
  }

  static JsonNode toJson(Object value) {
    if (value == null) {
      return JSON.nullNode();
    }
    if (value instanceof GenericRecord record) {
      ObjectNode object = JSON.objectNode();
      for (Schema.Field field : record.getSchema().getFields()) {
        object.set(field.name(), toJson(record.get(field.name())));
      }
      return object;
    }
    if (value instanceof CharSequence text) {
      return JSON.textNode(text.toString());
    }
    if (value instanceof Integer i) {
      return JSON.numberNode(i);
    }
    if (value instanceof Long l) {
      return JSON.numberNode(l);
    }
    if (value instanceof Float f) {
      return JSON.numberNode(f);
    }
    if (value instanceof Double d) {
      return JSON.numberNode(d);
    }
    if (value instanceof Boolean b) {
      return JSON.booleanNode(b);
    }
    if (value instanceof Collection<?> list) {
      ArrayNode array = JSON.arrayNode();
      list.forEach(element -> array.add(toJson(element)));
      return array;
    }
    if (value instanceof Map<?, ?> map) {
      ObjectNode object = JSON.objectNode();
      map.forEach((k, v) -> object.set(String.valueOf(k), toJson(v)));
      return object;
    }
    if (value instanceof ByteBuffer bytes) {
      byte[] copy = new byte[bytes.remaining()];
      bytes.duplicate().get(copy);
      return JSON.binaryNode(copy);
    }
    return JSON.textNode(String.valueOf(value));
  }

  /** Parquet's view of a seekable Beam channel. */
  private record ChannelInputFile(SeekableByteChannel channel) implements InputFile {
    @Override
    public long getLength() throws IOException {
      return channel.size();
    }

    @Override
    public SeekableInputStream newStream() {
      return new DelegatingSeekableInputStream(java.nio.channels.Channels.newInputStream(channel)) {
        @Override
        public long getPos() throws IOException {
          return channel.position();
        }

        @Override
        public void seek(long position) throws IOException {
          channel.position(position);
        }
      };
    }
  }
}
