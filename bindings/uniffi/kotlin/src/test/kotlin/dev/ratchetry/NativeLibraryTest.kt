package dev.ratchetry

import com.sun.jna.NativeLibrary
import com.sun.jna.Platform
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Test
import uniffi.ratchetry_uniffi.DeviceEvent
import uniffi.ratchetry_uniffi.createAccount
import uniffi.ratchetry_uniffi.safetyNumber

/** The cdylib travels as a resource under JNA's platform folder, and JNA loads it from there. */
class NativeLibraryTest {
    @Test
    fun theLibraryIsLoadedFromTheResourceNotALibraryPath() {
        assertNull(System.getProperty("jna.library.path"))
        assertNull(System.getProperty("uniffi.component.ratchetry_uniffi.libraryOverride"))
        val name = "${Platform.RESOURCE_PREFIX}/${System.mapLibraryName("ratchetry_uniffi")}"
        val resource = javaClass.classLoader.getResource(name)
        assertNotNull(resource, "no $name on the classpath")

        // A call through the binding, then: the library JNA opened is that resource.
        val key = createAccount(NOW).primary.accountKey()
        assertEquals(32, key.size)
        assertEquals(60, safetyNumber(key, key).count { it.isDigit() })
        val loaded = NativeLibrary.getInstance("ratchetry_uniffi").file
        assertNotNull(loaded)
        if (System.getProperty("ratchetry.fromJar") == "true") {
            // Surefire's second run puts the packaged jar on the classpath instead of
            // target/classes: the binding and the library come out of the jar (JNA extracted the
            // library to a temporary file, and deleted it once loaded).
            assertEquals("jar", resource!!.protocol)
            assertEquals("jar", DeviceEvent::class.java.getResource("DeviceEvent.class")!!.protocol)
        } else {
            assertEquals("file", resource!!.protocol)
            assertArrayEquals(resource.readBytes(), loaded.readBytes())
        }
    }
}
