-- Argo CD health check for vaultkeeper.io/VaultCluster (Lua 5.1, as Argo CD runs it).
-- Install: docs/install.md ("Argo CD"). Tested against the cases in health_test.yaml.
--
-- The status follows the kstatus conventions: it describes the spec only when
-- status.observedGeneration equals metadata.generation, so anything older is still
-- Progressing, whatever its conditions say.
local hs = {}

local function condition(conditions, wanted)
  if type(conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(conditions) do
    if type(c) == "table" and c.type == wanted then
      return c
    end
  end
  return nil
end

local function message(c, fallback)
  if c ~= nil and type(c.message) == "string" and c.message ~= "" then
    return c.message
  end
  return fallback
end

local status = obj.status
if type(status) ~= "table" then
  hs.status = "Progressing"
  hs.message = "Waiting for the vaultkeeper operator to report status"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the vaultkeeper operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = status.conditions
local specValid = condition(conditions, "SpecValid")
if specValid ~= nil and specValid.status == "False" then
  hs.status = "Degraded"
  hs.message = message(specValid, "The VaultCluster spec is not valid")
  return hs
end

local degraded = condition(conditions, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = message(degraded, "The VaultCluster is degraded")
  return hs
end

local ready = condition(conditions, "Ready")
if status.phase == "Blocked" then
  -- Blocked needs a person (e.g. an initialized cluster whose keys Secret is gone); the
  -- condition that says why is Ready, or Progressing when Ready has no message.
  hs.status = "Degraded"
  hs.message = message(ready, message(condition(conditions, "Progressing"), "The VaultCluster is blocked: see kubectl describe vaultcluster"))
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message(ready, "Ready")
  return hs
end

hs.status = "Progressing"
local phase = "unknown"
if type(status.phase) == "string" and status.phase ~= "" then
  phase = status.phase
end
hs.message = message(condition(conditions, "Progressing"), "Phase: " .. phase)
return hs
